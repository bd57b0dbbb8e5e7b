//! `mmcid`: the Linux MM CID system as an executable, checkable model. The commands only parse
//! arguments and render; the logic lives in the library crates and the command line in this
//! package's library (`mmcid::run`).

fn main() {
    std::process::exit(mmcid::run(std::env::args_os()));
}
