//! SIGTERM / SIGINT: shut down cleanly, with Redis's log lines.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

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
                // The server saves first if it is set to (see `take`); one
                // that does not take the request soon (still starting, or
                // stuck) just exits.
                REQUESTED.store(sig, Ordering::SeqCst);
                for _ in 0..200 {
                    if TAKEN.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                if !TAKEN.swap(true, Ordering::SeqCst) {
                    shutdown(&pidfile);
                }
            }
        })
        .map(drop)
        .unwrap_or_else(|e| warn!("Could not start the signal thread: {e}"));
}

/// The signal that asked for shutdown, 0 while none did.
static REQUESTED: AtomicI32 = AtomicI32::new(0);
/// The server took the request (it saves, then exits).
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The shutdown a signal asked for, once: the `shutdown-on-sigterm` /
/// `shutdown-on-sigint` directive that applies.
pub fn take() -> Option<&'static str> {
    match REQUESTED.load(Ordering::SeqCst) {
        0 => None,
        _ if TAKEN.swap(true, Ordering::SeqCst) => None,
        sig if sig == SIGINT => Some("shutdown-on-sigint"),
        _ => Some("shutdown-on-sigterm"),
    }
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
