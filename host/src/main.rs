fn main() -> std::process::ExitCode {
    runway::cli::main()
}
