// mimalloc: the scan's workers allocate and free many small buffers at once; glibc's malloc
// spent about 8% of the scan's instructions and contends between threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    git_teleos::cli::main()
}
