//! The `leadflow` binary: the allocator, logging, argument parsing and the
//! exit status. Every command lives in `src/cli/<command>.rs`.

mod cli;

use clap::Parser;

// sled allocates per key; a faster allocator is a measurable win on append.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    leadflow::keep_freed_memory();
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
