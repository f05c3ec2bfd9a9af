fn main() -> std::process::ExitCode {
    nestgate::cli::run()
}
