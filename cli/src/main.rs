//! The `packetstream` command: see the crate's documentation, or
//! `packetstream --help`.

fn main() -> std::process::ExitCode {
    packetstream_cli::run()
}
