//! The 6.4–6.18 design (work in progress).
