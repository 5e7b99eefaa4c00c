fn main() -> std::process::ExitCode {
    git_teleos::cli::main()
}
