/// mimalloc instead of the system allocator: under load, glibc's malloc spent about a fifth of
/// the gateway's time, much of it on its arena locks (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    nestgate::cli::run()
}
