//! The `jetsaga` binary: parse the command line, hand over to [`jetsaga::cli`].

/// mimalloc, not glibc's malloc: allocation was the largest item of the
/// engine's profile under load (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    jetsaga::cli::run()
}
