//! `pm`: parses the command line and hands it to the library.

/// mimalloc instead of glibc's malloc: the gateway and the authorizer
/// allocate many short-lived buffers across threads, where glibc's arenas
/// spent about 12 % of `pm serve`'s CPU (issue 9 profile). Built without
/// transparent huge pages (`no_thp`): with them, the kernel zeroed a fresh
/// 2 MiB page each time mimalloc reused purged memory, 2 to 3 % of `pm
/// serve`'s CPU under load, and each process started 20 MiB larger.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pm::cli::main()
}
