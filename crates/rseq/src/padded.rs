//! A slot on cache lines of its own, shared by the per-CID containers ([`crate::percid`]) and
//! the rseq critical sections that index them ([`crate::sys`]).

/// Aligns its content to 128 bytes: two 64-byte lines, because x86's
/// adjacent-line prefetcher otherwise couples neighbouring slots.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);
