//! The `jetsaga` binary: parse the command line, hand over to [`jetsaga::cli`].

fn main() -> std::process::ExitCode {
    jetsaga::cli::run()
}
