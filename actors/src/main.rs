//! The `tollgate` binary: see `tollgate --help` and the README.
fn main() -> std::process::ExitCode {
    tollgate_actors::cli::main()
}
