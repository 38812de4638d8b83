//! The shard's event loop: socket readiness from one edge-triggered epoll
//! instance, this shard's timers, and the bell other cores ring.
//!
//! Why not glommio's `TcpStream`: it arms a one-shot io_uring poll after
//! every partial read. Each of those costs a submission, a completion
//! delivered as task work and, when it lands while the thread is busy, a
//! rescheduling IPI; measured under redis-benchmark that was about 30% of
//! the server's CPU per unpipelined request. Here every socket is
//! registered once, edge-triggered, and a single driver task collects the
//! edges of all of them with one `epoll_wait`, the way Redis's event loop
//! does.
//!
//! Why the driver sleeps in `epoll_wait` and not in glommio's reactor:
//! every turn of glommio's executor loop cancels and re-arms its
//! preemption timers, one `io_uring_enter` or more, and an unpipelined
//! load makes a turn per request or two (about 10% of the server's CPU per
//! request). So the driver never lets the run queue go empty: it yields
//! after each round and, once a whole pass of the queue ran no other task,
//! blocks in `epoll_wait` itself. Whatever can wake a task of this thread
//! while it sleeps has to reach that `epoll_wait`:
//! - sockets are in the epoll set;
//! - timers are the poller's own ([`sleep`]), their nearest deadline is the
//!   timeout;
//! - another core's message rings this shard's [`Bell`] (an eventfd in the
//!   set) and the driver takes the mail.
//!
//! glommio's own loop still turns when its preemption timer fires (every
//! 100 ms at most), which is enough for what it alone can wake.
//!
//! Readiness is a flag per direction: the driver sets it on an edge and
//! wakes the waiting task; the task clears it before each recv/send, so an
//! edge that arrives in between is never lost.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Readiness of one registered descriptor.
#[derive(Default)]
pub struct Readiness {
    readable: Cell<bool>,
    /// Out-of-band replies (Pub/Sub) wait in the client's outbox.
    pushed: Cell<bool>,
    writable: Cell<bool>,
    read_waker: Cell<Option<Waker>>,
    write_waker: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("readable", &self.readable.get())
            .field("writable", &self.writable.get())
            .finish()
    }
}

impl Readiness {
    /// Forget readiness before a recv: an edge after this point counts.
    pub fn clear_readable(&self) {
        self.readable.set(false);
    }

    pub fn clear_writable(&self) {
        self.writable.set(false);
    }

    /// Marks the descriptor readable again (a read filled the buffer, so
    /// more may be queued without a new edge).
    pub fn set_readable(&self) {
        self.readable.set(true);
    }

    /// Wakes the task waiting for input to write queued pushes.
    pub fn notify_push(&self) {
        self.pushed.set(true);
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
    }

    /// Whether pushes were queued since the last call.
    pub fn take_pushed(&self) -> bool {
        self.pushed.replace(false)
    }

    /// Waits for input, or for pushes to write.
    pub async fn readable(&self) {
        poll_fn(|cx| {
            if self.readable.get() || self.pushed.get() {
                Poll::Ready(())
            } else {
                self.read_waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    pub async fn writable(&self) {
        poll_fn(|cx| {
            if self.writable.get() {
                Poll::Ready(())
            } else {
                self.write_waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    fn fire(&self, events: u32) {
        let hangup = events & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
        if hangup || events & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0 {
            self.readable.set(true);
            if let Some(w) = self.read_waker.take() {
                w.wake();
            }
        }
        if hangup || events & libc::EPOLLOUT as u32 != 0 {
            self.writable.set(true);
            if let Some(w) = self.write_waker.take() {
                w.wake();
            }
        }
    }
}

/// Goes to the back of the executor's queue once.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Yields after a step of background work that took `spent`: on an idle
/// thread the work goes on at once; while other tasks (clients) have work
/// it waits long enough that the background takes at most `share` of the
/// thread's time.
pub async fn yield_share(spent: Duration, share: f64) {
    let seen = activity();
    yield_now().await;
    // The caller's own poll counts once: more means others ran.
    if activity().wrapping_sub(seen) > 1 {
        sleep(spent.mul_f64(1.0 / share - 1.0)).await;
    }
}

thread_local! {
    /// Polls of this thread's tasks other than the driver: a pass of the
    /// run queue that leaves it unchanged ran nothing else.
    static ACTIVITY: Cell<u64> = const { Cell::new(0) };
    static TIMERS: RefCell<Timers> = RefCell::new(Timers::default());
}

/// Spawns a task on this thread's executor. Every task but the driver goes
/// through here, so the driver can tell when the run queue is idle.
pub fn spawn<T: 'static>(task: impl Future<Output = T> + 'static) -> glommio::Task<T> {
    glommio::spawn_local(async move {
        let mut task = pin!(task);
        poll_fn(|cx| {
            ACTIVITY.with(|a| a.set(a.get().wrapping_add(1)));
            task.as_mut().poll(cx)
        })
        .await
    })
}

fn activity() -> u64 {
    ACTIVITY.with(Cell::get)
}

#[derive(Default)]
struct Timers {
    /// Sleepers by (deadline, id).
    due: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

/// Waits `d` on this shard's clock (see the module comment for why not
/// glommio's timers).
pub fn sleep(d: Duration) -> Sleep {
    Sleep { deadline: Instant::now().checked_add(d), key: None }
}

/// A [`sleep`] in progress; dropping it cancels it.
pub struct Sleep {
    /// None: too far away to ever arrive.
    deadline: Option<Instant>,
    key: Option<(Instant, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(deadline) = this.deadline else { return Poll::Pending };
        if Instant::now() >= deadline {
            this.cancel();
            return Poll::Ready(());
        }
        TIMERS.with(|t| {
            let mut t = t.borrow_mut();
            let key = match this.key {
                Some(k) => k,
                None => {
                    t.next_id += 1;
                    let k = (deadline, t.next_id);
                    this.key = Some(k);
                    k
                }
            };
            t.due.insert(key, cx.waker().clone());
        });
        Poll::Pending
    }
}

impl Sleep {
    fn cancel(&mut self) {
        if let Some(k) = self.key.take() {
            // The thread's timers may already be gone when it exits.
            let _ = TIMERS.try_with(|t| t.borrow_mut().due.remove(&k));
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Wakes the sleepers whose deadline passed. Returns whether it woke any,
/// and how long until the next one.
fn fire_timers() -> (bool, Option<Duration>) {
    TIMERS.with(|t| {
        let mut t = t.borrow_mut();
        if t.due.is_empty() {
            return (false, None);
        }
        let now = Instant::now();
        let mut woke = false;
        while let Some(entry) = t.due.first_entry() {
            let deadline = entry.key().0;
            if deadline > now {
                return (woke, Some(deadline - now));
            }
            entry.remove().wake();
            woke = true;
        }
        (woke, None)
    })
}

/// How another core tells this shard it sent it a message: `mail` is
/// always set, the eventfd written only when the driver sleeps (or is
/// about to) in `epoll_wait`. Both sides use sequentially consistent
/// order, so either the sender sees `sleeping` or the driver sees `mail`.
#[derive(Debug)]
pub struct Bell {
    fd: OwnedFd,
    sleeping: AtomicBool,
    mail: AtomicBool,
}

impl Bell {
    pub fn new() -> io::Result<Bell> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Bell { fd, sleeping: AtomicBool::new(false), mail: AtomicBool::new(false) })
    }

    /// Called after sending this shard a message.
    pub fn ring(&self) {
        if !self.mail.swap(true, Ordering::SeqCst) && self.sleeping.load(Ordering::SeqCst) {
            let one = 1u64.to_ne_bytes();
            // SAFETY: writing 8 bytes from a live buffer to our eventfd; a
            // full counter (EAGAIN) still leaves it readable.
            unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        }
    }

    fn drain(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes into a live buffer.
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }
}

/// The epoll token of the bell (sockets use their descriptor).
const BELL: u64 = u64::MAX;
/// The longest the driver sleeps without a timer due: glommio's own
/// wakeups (a full mesh channel making room) wait at most this long.
const MAX_SLEEP: Duration = Duration::from_millis(100);

pub struct Poller {
    epfd: OwnedFd,
    registered: RefCell<HashMap<RawFd, Rc<Readiness>>>,
    bell: Arc<Bell>,
}

impl Poller {
    pub fn new(bell: Arc<Bell>) -> io::Result<Rc<Poller>> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Level-triggered: it stays reported until drained.
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: BELL };
        // SAFETY: both descriptors are open; `ev` outlives the call.
        if unsafe { libc::epoll_ctl(epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, bell.fd.as_raw_fd(), &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Rc::new(Poller { epfd, registered: RefCell::new(HashMap::new()), bell }))
    }

    /// Watches `fd` (already non-blocking) for both directions, edge
    /// triggered. It starts out readable and writable: data may have
    /// arrived before registration.
    pub fn register(&self, fd: RawFd) -> io::Result<Rc<Readiness>> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: fd as u64,
        };
        // SAFETY: both descriptors are open; `ev` outlives the call.
        if unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let r = Rc::new(Readiness::default());
        r.readable.set(true);
        r.writable.set(true);
        self.registered.borrow_mut().insert(fd, r.clone());
        Ok(r)
    }

    /// Stops watching `fd`; call before closing it.
    pub fn deregister(&self, fd: RawFd) {
        self.registered.borrow_mut().remove(&fd);
        // SAFETY: removing an fd from our epoll set; errors are harmless.
        unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
    }

    /// The driver: collects edges, fires timers and takes mail, and sleeps
    /// in `epoll_wait` only when a pass of the run queue ran nothing else.
    /// `on_round` runs before the woken tasks of each round (the shard
    /// refreshes its clock there); `on_mail` after the bell rang;
    /// `after_pass` once the runnable tasks ran (Redis's beforeSleep);
    /// it returns whether it woke tasks.
    pub async fn run(self: Rc<Self>, on_round: impl Fn(), on_mail: impl Fn(), after_pass: impl Fn() -> bool) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut idle = false;
        loop {
            if self.bell.mail.swap(false, Ordering::SeqCst) {
                on_mail();
                idle = false;
            }
            let (woke, next) = fire_timers();
            let timeout = if idle && !woke { next.map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP)) } else { Duration::ZERO };
            let n = self.wait(&mut events, timeout);
            // Mail posted before what woke the sockets is taken before
            // they run: an invalidation sent ahead of a writer's reply is
            // queued before a request that reply led to.
            if self.bell.mail.swap(false, Ordering::SeqCst) {
                on_mail();
            }
            if n > 0 {
                on_round();
                self.dispatch(&events[..n]);
            }
            // Run what is runnable. The first pass after a round runs the
            // woken connections; a pass that runs nothing means idle.
            let seen = activity();
            yield_now().await;
            idle = activity() == seen;
            if !idle && n > 0 {
                let seen = activity();
                yield_now().await;
                idle = activity() == seen;
            }
            if after_pass() {
                idle = false;
            }
        }
    }

    /// One `epoll_wait`; a non-zero timeout sleeps, unless mail came.
    fn wait(&self, events: &mut [libc::epoll_event], timeout: Duration) -> usize {
        let ms = timeout.as_nanos().div_ceil(1_000_000) as i32;
        if ms > 0 {
            self.bell.sleeping.store(true, Ordering::SeqCst);
            if self.bell.mail.load(Ordering::SeqCst) {
                self.bell.sleeping.store(false, Ordering::SeqCst);
                return 0;
            }
        }
        // SAFETY: `events` has room for `len` entries.
        let n = unsafe { libc::epoll_wait(self.epfd.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, ms) };
        if ms > 0 {
            self.bell.sleeping.store(false, Ordering::SeqCst);
        }
        // EINTR (a signal, io_uring task work) counts as nothing ready.
        n.max(0) as usize
    }

    fn dispatch(&self, events: &[libc::epoll_event]) {
        let registered = self.registered.borrow();
        for ev in events {
            if ev.u64 == BELL {
                self.bell.drain();
                continue;
            }
            let (fd, bits) = (ev.u64 as RawFd, ev.events);
            if let Some(r) = registered.get(&fd) {
                r.fire(bits);
            }
        }
    }
}
