//! The engine: one shard per core, connections, dispatch, transactions.

pub mod blocking;
pub mod buffers;
pub mod client;
pub mod connection;
pub mod dispatch;
pub mod evict;
pub mod fanout;
pub mod listen;
pub mod locks;
pub mod monitor;
pub mod notify;
pub mod pause;
pub mod poller;
pub mod pubsub;
pub mod shard;
pub mod shared;
pub mod signals;
pub mod stats;
pub mod tracking;
pub mod transaction;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};
use thiserror::Error;
use tracing::info;

use crate::command::Table;
use crate::config::{Config, Hot};
use crate::storage::expire::active_expire_cycle;
use client::Client;
use shard::{Mailbox, Shard};
use shared::Shared;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("Could not create server TCP listening socket {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("Invalid bind address '{0}'")]
    BadBind(String),
    #[error("Failed to start shard {0}: {1}")]
    Executor(usize, String),
    #[error("{0}")]
    Aof(#[from] crate::persistence::aof::AofError),
    #[error("{0}")]
    Rdb(#[from] crate::persistence::rdb::LoadError),
}

/// The Redis version percore answers as (INFO, HELLO, RDB files): the
/// reference it is tested against.
pub const REDIS_VERSION: &str = "7.0.15";

/// What startup loads: the AOF when it is on, else the RDB file.
enum Load {
    Aof(crate::persistence::Startup),
    Rdb(std::path::PathBuf),
}

/// Number of shards: the `threads` directive, or every CPU this process may
/// run on.
fn shard_count(config: &Config) -> usize {
    match config.int("threads") {
        n if n > 0 => n as usize,
        _ => core_affinity::get_core_ids().map_or(1, |c| c.len().max(1)),
    }
}

/// Starts every shard and blocks until they exit.
/// Runs the server with `config`, answering the commands of `commands`.
pub fn run(config: Config, commands: &'static Table<Client>) -> Result<(), StartError> {
    let port = config.int("port") as u16;
    let shards = shard_count(&config);
    // Every shard's listeners exist before the PID is logged: test
    // harnesses (Redis's own) connect as soon as they see it, and then
    // get -LOADING rather than a refused connection.
    let (addrs, listeners) = listen::open(config.str("bind"), port, config.int("tcp-backlog") as i32, shards)?;
    let mut listeners = listeners.into_iter();
    info!("Running mode=standalone, port={port}. PID: {}", std::process::id());
    let load = match config.str("appendonly") {
        "yes" => Load::Aof(crate::persistence::prepare(crate::persistence::aof::Settings::from_config(&config))?),
        _ => Load::Rdb(std::path::PathBuf::from(config.str("dbfilename"))),
    };
    let shared = Arc::new(Shared::new(config, commands, shards));
    shared.config(|c| shared.aof.set_fsync(crate::persistence::aof::Fsync::parse(c.str("appendfsync"))));
    let loading = match &load {
        Load::Aof(a) => a.total > 0,
        Load::Rdb(path) => path.exists(),
    };
    if loading {
        shared.loading.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let (loaded_tx, loaded_rx) = std::sync::mpsc::channel::<Result<(), StartError>>();
    let mut pending_load = Some((load, loaded_tx));
    let (go_tx, go_rx) = futures::channel::oneshot::channel::<()>();
    let mut go_rx = Some(go_rx);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (mailboxes, inboxes): (Vec<Mailbox>, Vec<_>) = (0..shards).map(|_| Mailbox::new()).unzip();
    let mailboxes: Arc<[Mailbox]> = mailboxes.into();
    let mut inboxes = inboxes.into_iter();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::new();
    for i in 0..shards {
        let placement = if shards <= cores.len() { Placement::Fixed(cores[i].id) } else { Placement::Unbound };
        let shared = shared.clone();
        let mailboxes = mailboxes.clone();
        let inbox = inboxes.next().expect("one inbox per shard");
        let own = listeners.next().expect("listeners for every shard");
        let ready = ready_tx.clone();
        // Shard 0 loads: it replays the AOF through dispatch like any
        // client, or reads the RDB and sends each key to its owner.
        let load = if i == 0 { pending_load.take() } else { None };
        let go = if i == 0 { go_rx.take() } else { None };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("percore-shard-{i}"))
            .spawn(move || async move {
                let shard = Shard::new(i, shared, mailboxes, inbox);
                let (clock, mail, flush) = (shard.clone(), shard.clone(), shard.clone());
                let driver = shard.poller.clone().run(
                    move || _ = clock.tick(),
                    move || mail.take_mail(),
                    move || flush.flush_durable() | flush.tracking_before_sleep(),
                );
                glommio::spawn_local(driver).detach();
                poller::spawn(cron(shard.clone())).detach();
                listen::install(&shard, own);
                let _ = ready.send(Ok(()));
                if let Some((load, loaded)) = load {
                    let shard = shard.clone();
                    poller::spawn(async move {
                        // Loading starts once every shard stands, so that
                        // the startup memory is measured without data.
                        if let Some(go) = go {
                            let _ = go.await;
                        }
                        let result = match load {
                            Load::Aof(startup) => crate::persistence::load(&shard, &startup)
                                .await
                                .and_then(|()| crate::persistence::start_writer(startup, &shard))
                                .map_err(StartError::from),
                            Load::Rdb(path) => {
                                crate::persistence::rdb::load(&shard, &path).await.map(drop).map_err(StartError::from)
                            }
                        };
                        crate::persistence::finish_loading(&shard).await;
                        shard.broadcast(|sh| sh.set_started()).await;
                        let replicaof = shard.server.config(|c| c.str("replicaof").to_string());
                        if let Some((host, port)) = crate::replication::replica::parse_replicaof(&replicaof) {
                            crate::replication::replica::start(&shard, host, port);
                        }
                        let _ = loaded.send(result);
                    })
                    .detach();
                }
                // The shard's tasks run until the process exits.
                std::future::pending::<()>().await;
            })
            .map_err(|e| StartError::Executor(i, e.to_string()))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StartError::Executor(0, e)),
            Err(_) => {
                return Err(StartError::Executor(0, "shard exited during startup".into()));
            }
        }
    }
    // What a server without data or clients holds (used_memory_startup).
    shared.startup_memory.store(shared::allocated_now(), std::sync::atomic::Ordering::Relaxed);
    let _ = go_tx.send(());
    info!("Server initialized with {shards} shard(s), one per core");
    if let Ok(loaded) = loaded_rx.recv() {
        loaded?;
    }
    let listening: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    info!("Ready to accept connections tcp ({})", listening.join(" "));
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// The shard's periodic work, `hz` ticks per second: active expiry with a
/// quarter of each tick as its budget (Redis's slow cycle), and closing
/// clients idle for longer than `timeout`.
async fn cron(shard: Rc<Shard>) {
    let mut last_rates = std::time::Instant::now();
    loop {
        let hz = Hot::get(&shard.server.hot.hz).max(1);
        let period = Duration::from_millis(1000 / hz);
        poller::sleep(period).await;
        if shard.server.cron_paused.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let now = shard.tick();
        if shard.id == 0
            && let Some(directive) = signals::take()
        {
            crate::persistence::rdb::signalled_shutdown(&shard, directive).await;
        }
        let loading = shard.server.loading.load(std::sync::atomic::Ordering::Relaxed);
        // A paused server expires and evicts nothing (the dataset holds
        // still for whoever paused it).
        let paused = shard.server.holds_expiry();
        if shard.server.active_expire.load(std::sync::atomic::Ordering::Relaxed) && !loading && !paused {
            let notify = shard.arm_notifications();
            let started = std::time::Instant::now();
            let mut ks = shard.ks.borrow_mut();
            ks.set_journal(
                shard.server.journal.active(),
                shard.server.hot.lazyfree_lazy_expire.load(std::sync::atomic::Ordering::Relaxed),
            );
            ks.set_loading(false);
            let locks = shard.locks.borrow();
            let stats = active_expire_cycle(&mut ks, now, period / 4, &|db, key| locks.is_held(db, key));
            drop(locks);
            // Each expired key propagates as a DEL of its own.
            for op in ks.take_expired_ops() {
                shard.journal(vec![op]);
            }
            drop(ks);
            shard.signal_changed(None);
            let threshold = Hot::get(&shard.server.hot.latency_monitor_ms);
            shard.server.records.sample("expire-cycle", started.elapsed(), threshold);
            if stats.timed_out {
                shard.stats.expire_cycle_timeouts.set(shard.stats.expire_cycle_timeouts.get() + 1);
            }
            if notify != 0 {
                shard.publish_events();
            }
        }
        if !paused {
            shard.evict(64);
        }
        if shard.id == 0 {
            crate::replication::master::cron(&shard);
        }
        if shard.id == 0 && !loading {
            crate::persistence::auto_rewrite(&shard);
            crate::persistence::rdb::cron(&shard).await;
            if last_rates.elapsed() >= stats::METRIC_PERIOD {
                last_rates = std::time::Instant::now();
                let totals = shard
                    .broadcast(|sh| (sh.stats.commands.get(), sh.stats.net_input.get(), sh.stats.net_output.get()))
                    .await;
                let sum = totals.iter().fold((0, 0, 0), |a, t| (a.0 + t.0, a.1 + t.1, a.2 + t.2));
                let mut rates = shard.server.records.rates.lock().unwrap_or_else(|p| p.into_inner());
                rates.sample(sum.0, sum.1, sum.2);
            }
        }
        let timeout_ms = Hot::get(&shard.server.hot.timeout) as i64 * 1000;
        let peak_reset_ms = shard.server.reply_peak_reset_ms.load(std::sync::atomic::Ordering::Relaxed);
        let resizing = shard.server.reply_resizing.load(std::sync::atomic::Ordering::Relaxed);
        for client in shard.clients.borrow().values() {
            let idle_ms = now - client.last_active_ms.get();
            if timeout_ms > 0 && idle_ms > timeout_ms {
                client.kill();
                continue;
            }
            let read = (client.rbuf_size.get(), client.qbuf.get());
            match client.sizing.cron(now, peak_reset_ms, resizing, idle_ms, read) {
                Some(buffers::Resize::Shrink) => shard.stats.reply_shrinks.set(shard.stats.reply_shrinks.get() + 1),
                Some(buffers::Resize::Expand) => shard.stats.reply_expands.set(shard.stats.reply_expands.get() + 1),
                None => {}
            }
            if client.sizing.pending() {
                client.wake();
            }
        }
    }
}
