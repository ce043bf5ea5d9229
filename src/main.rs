//! The `leadflow` binary: the allocator, logging, argument parsing and the
//! exit status. Every command lives in `src/cli/<command>.rs`.

mod cli;

use clap::Parser;

// sled allocates per key; a faster allocator is a measurable win on append.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // mimalloc returns freed memory to the OS after 10 ms by default; with
    // transparent huge pages every re-use then faults in and zeroes 2 MiB,
    // which took half of an import's CPU. Keep freed memory instead.
    // SAFETY: setting an option is thread-safe and takes plain integers.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format);
    cli::quiet_on_closed_stdout();
    if let Err(e) = cli::exec(cli) {
        if cli::is_broken_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("error: {}", cli::describe_error(&e));
        std::process::exit(1);
    }
}
