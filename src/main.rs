//! The `tandem` binary: everything lives in the library; see `tandem::cli`.

fn main() -> std::process::ExitCode {
    tandem::cli::main()
}
