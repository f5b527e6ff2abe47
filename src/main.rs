//! The `tandem` binary: everything lives in the library; see `tandem::cli`.
//! It runs on mimalloc: the replication loop allocates and frees many small
//! rows across threads, where glibc's allocator showed up as a fifth of
//! tandem's CPU under load (README, benchmarks).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tandem::cli::main()
}
