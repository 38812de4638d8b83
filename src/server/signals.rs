//! SIGTERM / SIGINT: shut down cleanly, with Redis's log lines.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{info, warn};

pub fn install(pidfile: String) {
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            warn!("Could not install signal handlers: {e}");
            return;
        }
    };
    std::thread::Builder::new()
        .name("percore-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                info!("Received {name} scheduling shutdown...");
                shutdown(&pidfile);
            }
        })
        .map(drop)
        .unwrap_or_else(|e| warn!("Could not start the signal thread: {e}"));
}

/// Ends the process the way Redis announces it.
pub fn shutdown(pidfile: &str) -> ! {
    info!("User requested shutdown...");
    if !pidfile.is_empty() {
        info!("Removing the pid file.");
        let _ = std::fs::remove_file(pidfile);
    }
    info!("percore is now ready to exit, bye bye...");
    std::process::exit(0)
}
