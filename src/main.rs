//! `pm`: parses the command line and hands it to the library.

/// mimalloc instead of glibc's malloc: the gateway and the authorizer
/// allocate many short-lived buffers across threads, where glibc's arenas
/// spent about 12 % of `pm serve`'s CPU (issue 9 profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pm::cli::main()
}
