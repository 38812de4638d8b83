//! Lua scripting: EVAL and friends run Lua 5.1 code (LuaJIT, which also
//! lets a script yield across `pcall` while a `redis.call` waits for
//! another shard).
//!
//! Each shard has its own interpreter, created on first use, with Redis's
//! sandbox: the base, table, string, math, bit, cjson, cmsgpack and struct
//! libraries, no way to
//! create globals, reading an undefined global is an error. A script runs
//! on the shard that owns its declared keys (or the caller's, when they are
//! spread or absent), holding the locks of all of them, one script at a
//! time per shard; `redis.call` runs commands through the dispatcher as
//! EXEC does, so a command on a local key never leaves the thread.
//!
//! Scripts are cached by SHA1 in `Shared` for every shard; each shard
//! compiles a script into its interpreter the first time it runs it.
//!
//! A script that runs past `busy-reply-threshold` makes every other
//! command answer BUSY. So that this also holds for the clients of its own
//! thread, and one of them can send SCRIPT KILL, an instruction hook
//! yields the script's coroutine every few milliseconds and lets the
//! reactor run for a moment; the script keeps its locks meanwhile.

mod cjson;
mod cmsgpack;
mod lua_struct;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{Lua, LuaOptions, MultiValue, StdLib, Table, Value, ffi};

use crate::command::{self, OwnedArgs, WRITE};
use crate::protocol::reply::{Proto, format_double};
use crate::protocol::{CmdError, Reply};
use crate::server::client::Client;
use crate::server::dispatch::execute;
use crate::server::shard::Shard;
use crate::server::shared::Shared;
use crate::storage::Key;

/// The SHA1 of a script body, as EVALSHA names it.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// How long a script waits for a key it did not declare that another
/// client holds (see `lock_key_within`).
const PATIENCE: Duration = Duration::from_millis(100);

/// What a run leaves for its caller: the writes to journal as one unit,
/// and the undeclared keys it locked (shard, db, key), to release once
/// they are journaled.
#[derive(Default)]
pub struct RunEffects {
    pub ops: Vec<crate::journal::Op>,
    pub borrowed: Vec<(usize, usize, Key)>,
}

/// The script being run on a shard: the client its commands run as.
struct Run {
    client: Client,
    read_only: bool,
    /// Declared keys, locked before the script started...
    keys: HashSet<Bytes>,
    /// ...others once locked for the script (shard, db, key), which the
    /// caller releases with its own locks.
    borrowed: Vec<(usize, usize, Key)>,
    wrote: bool,
    /// The caller's client-side cache: once the script reads, its
    /// declared keys are remembered for it (as Redis tracks the caller's
    /// keys when a script runs a read-only command).
    tracker: Option<crate::server::tracking::Reader>,
    /// `f_<sha1>` for a script, the function's name for FCALL, and the
    /// command that kills it (the slow script warning names both, as
    /// Redis's does).
    name: String,
    kill: &'static str,
}

pub struct Engine {
    lua: Lua,
    run: Rc<RefCell<Option<Run>>>,
    started: Rc<Cell<Instant>>,
    /// Set by the hook when it paused the script to let this thread serve
    /// other clients (with BUSY) and SCRIPT KILL.
    paused: Rc<Cell<bool>>,
    /// One script at a time per interpreter (KEYS and ARGV are globals).
    turn: futures::lock::Mutex<()>,
    compiled: RefCell<HashSet<String>>,
    /// FUNCTION libraries loaded here, by name, at which version.
    libraries: RefCell<std::collections::HashMap<String, u64>>,
    /// Runs since the collector last stepped.
    runs: Cell<u32>,
}

/// Every this many runs the collector takes as many kilobyte steps
/// (Redis's LUA_GC_CYCLE_PERIOD), so garbage does not pile up between
/// the allocator's own triggers.
const GC_PERIOD: u32 = 50;

/// How often (in VM instructions) the hook looks at the clock and the
/// kill flag.
const HOOK_EVERY: i32 = 100_000;
/// Once a script is busy, it runs at most this long between pauses...
const RUN_BETWEEN_PAUSES: Duration = Duration::from_millis(10);
/// ...and each pause lets the reactor run for this long.
const PAUSE: Duration = Duration::from_millis(1);
const PCALL_SLOT: &std::ffi::CStr = c"percore.pcall";
const XPCALL_SLOT: &std::ffi::CStr = c"percore.xpcall";

/// What the instruction hook of this thread's interpreter looks at.
struct Watch {
    server: Arc<Shared>,
    run: Rc<RefCell<Option<Run>>>,
    started: Rc<Cell<Instant>>,
    last_pause: Cell<Instant>,
    paused: Rc<Cell<bool>>,
    /// While a FUNCTION LOAD runs its library: when it times out, if it
    /// may (a library loaded again on another shard was accepted once).
    loading: Cell<Option<Option<Instant>>>,
}

thread_local! {
    static WATCH: RefCell<Option<Watch>> = const { RefCell::new(None) };
}

enum HookAction {
    Continue,
    /// Yield to the reactor for a moment (the script is busy).
    Pause,
    Kill,
    /// Stop a FUNCTION LOAD that ran past its time.
    LoadTimeout,
}

fn hook_action() -> HookAction {
    WATCH.with(|w| {
        let w = w.borrow();
        let Some(w) = w.as_ref() else { return HookAction::Continue };
        // A load is never busy: it registers functions, in at most
        // Redis's 500 ms.
        if let Some(deadline) = w.loading.get() {
            return match deadline {
                Some(at) if Instant::now() > at => HookAction::LoadTimeout,
                _ => HookAction::Continue,
            };
        }
        let wrote = w.run.try_borrow().ok().and_then(|r| r.as_ref().map(|r| r.wrote)).unwrap_or(false);
        if w.server.script_kill.load(Ordering::Relaxed) && !wrote {
            return HookAction::Kill;
        }
        let busy_ms = w.server.config(|c| c.int("busy-reply-threshold")).max(0) as u64;
        if w.started.get().elapsed() < Duration::from_millis(busy_ms) {
            return HookAction::Continue;
        }
        if !w.server.script_busy.swap(true, Ordering::Relaxed) {
            let (kill, name) = match w.run.try_borrow().ok().as_ref().and_then(|r| r.as_ref()) {
                Some(r) => (r.kill, r.name.clone()),
                None => ("SCRIPT KILL", String::new()),
            };
            tracing::warn!(
                "Slow script detected: still in execution after {} milliseconds. You can try killing the script using the {kill} command. Script name is: {name}.",
                w.started.get().elapsed().as_millis()
            );
        }
        if w.last_pause.get().elapsed() < RUN_BETWEEN_PAUSES {
            return HookAction::Continue;
        }
        HookAction::Pause
    })
}

/// Whether the running coroutine can yield here: no C function other than
/// pcall/xpcall (which LuaJIT yields across) is on its stack.
///
/// # Safety
/// `state` is the running thread, inside a hook.
unsafe fn yieldable(state: *mut ffi::lua_State) -> bool {
    let mut ar: ffi::lua_Debug = unsafe { std::mem::zeroed() };
    let mut level = 0;
    while unsafe { ffi::lua_getstack(state, level, &mut ar) } != 0 {
        level += 1;
        if unsafe { ffi::lua_getinfo(state, c"Sf".as_ptr(), &mut ar) } == 0 {
            return false;
        }
        let is_c = !ar.what.is_null() && unsafe { std::ffi::CStr::from_ptr(ar.what) } == c"C";
        let mut allowed = !is_c;
        for slot in [PCALL_SLOT, XPCALL_SLOT] {
            unsafe { ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, slot.as_ptr()) };
            allowed |= unsafe { ffi::lua_rawequal(state, -1, -2) } != 0;
            unsafe { ffi::lua_pop(state, 1) };
        }
        unsafe { ffi::lua_pop(state, 1) };
        if !allowed {
            return false;
        }
    }
    true
}

/// The count hook: kills the script on SCRIPT KILL, and pauses a busy
/// script now and then so the thread's reactor keeps serving.
unsafe extern "C-unwind" fn instruction_hook(state: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    // Nothing with a destructor may be alive below: lua_yield and
    // lua_error unwind through this frame.
    match hook_action() {
        HookAction::Continue => {}
        HookAction::Pause => unsafe {
            if yieldable(state) {
                WATCH.with(|w| {
                    if let Some(w) = w.borrow().as_ref() {
                        w.paused.set(true);
                        w.last_pause.set(Instant::now());
                    }
                });
                ffi::lua_yield(state, 0);
            }
        },
        HookAction::LoadTimeout => unsafe {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_pushlstring(state, LOAD_TIMEOUT.as_ptr().cast(), LOAD_TIMEOUT.len());
            ffi::lua_setfield(state, -2, c"err".as_ptr());
            ffi::lua_error(state);
        },
        // Raised as redis.error_reply's table, with the line it stopped at.
        HookAction::Kill => unsafe {
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            let line =
                if ffi::lua_getstack(state, 0, &mut ar) != 0 && ffi::lua_getinfo(state, c"l".as_ptr(), &mut ar) != 0 {
                    ar.currentline
                } else {
                    1
                };
            ffi::lua_createtable(state, 0, 2);
            ffi::lua_pushlstring(state, KILLED.as_ptr().cast(), KILLED.len());
            ffi::lua_setfield(state, -2, c"err".as_ptr());
            ffi::lua_pushinteger(state, line.max(1).into());
            ffi::lua_setfield(state, -2, c"line".as_ptr());
            ffi::lua_error(state);
        },
    }
}

/// The flags a script may declare on its shebang, and a function at
/// registration.
pub const SCRIPT_FLAGS: &[&str] = &["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"];

const KILLED: &str = "Script killed by user with SCRIPT KILL...";
const LOAD_TIMEOUT: &str = "ERR FUNCTION LOAD timeout";
/// How long FUNCTION LOAD may run a library's code (Redis's LOAD_TIMEOUT_MS).
const LOAD_TIME: Duration = Duration::from_millis(500);

/// Lua code that finishes the sandbox and wraps the Rust primitives.
const PRELUDE: &str = r#"
local host_pcall = pcall
local call = __percore_call
local error_text = __percore_error_text
local setresp = __percore_setresp
local script_flag_names = __percore_script_flags
-- The message and line of the last error redis.call raised, so the host
-- can name the line even when the frame is gone (a tail call), and whether
-- it is already in the error stats.
local last = {}
local function raise_on_error(r)
  if type(r) == 'table' and r.err ~= nil then
    local line = 1
    for level = 2, 10 do
      local _, where = host_pcall(error, '', level)
      if string.sub(where, 1, 12) == 'user_script:' or string.sub(where, 1, 14) == 'user_function:' then
        line = tonumber(string.match(where, ':(%d+):'))
        break
      end
    end
    last.msg, last.line, last.counted = r.err, line, r.counted
    error(r.err, 0)
  end
  return r
end
redis = {
  call = function(...) return raise_on_error(call(...)) end,
  pcall = function(...) return call(...) end,
  -- "-CODE msg" or "msg" (code ERR), as Redis's luaPushErrorBuff reads it.
  error_reply = function(...)
    local e = ...
    if select('#', ...) ~= 1 or type(e) ~= 'string' then
      return {err = 'ERR wrong number or type of arguments'}
    end
    if string.sub(e, 1, 1) ~= '-' then e = '-' .. e end
    local space = string.find(e, ' ', 1, true)
    local code, msg = 'ERR', string.sub(e, 2)
    if space then code, msg = string.sub(e, 2, space - 1), string.sub(e, space + 1) end
    msg = string.gsub(string.gsub(msg, '^[\r\n]+', ''), '[\r\n]+$', '')
    return {err = code .. ' ' .. msg}
  end,
  status_reply = function(s) return {ok = tostring(s)} end,
  sha1hex = (function(sha1hex)
    return function(...)
      if select('#', ...) ~= 1 then raise_on_error({err = 'ERR wrong number of arguments'}) end
      return sha1hex(tostring((...)))
    end
  end)(__percore_sha1hex),
  log = __percore_log,
  setresp = function(v) raise_on_error(setresp(v)) end,
  set_repl = function() end,
  replicate_commands = function() return true end,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = __percore_version, REDIS_VERSION_NUM = __percore_version_num,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
}
__percore_call = nil
__percore_setresp = nil
__percore_sha1hex = nil
__percore_log = nil
__percore_version = nil
__percore_version_num = nil
__percore_script_flags = nil
__percore_error_text = nil
for _, name in ipairs({'dofile', 'loadfile', 'require', 'module', 'jit', 'newproxy', 'print'}) do
  _G[name] = nil
end
-- FUNCTION LOAD: a library registers its functions while it loads,
-- with Redis's checks and words (errors as tables: no script position).
local pending = nil
local function refuse_registration(message) error({err = 'ERR ' .. message}) end
local function is_string(v) return type(v) == 'string' or type(v) == 'number' end
local script_flags = {}
for _, f in ipairs(script_flag_names) do script_flags[f] = true end
local function read_flags(t)
  local flags = {}
  local j = 1
  while t[j] ~= nil do
    local f = t[j]
    if not is_string(f) or not script_flags[string.lower(tostring(f))] then refuse_registration('unknown flag given') end
    flags[j] = string.lower(tostring(f))
    j = j + 1
  end
  return flags
end
local function register_function(...)
  if pending == nil then refuse_registration('redis.register_function can only be called on FUNCTION LOAD command') end
  local argc = select('#', ...)
  if argc < 1 or argc > 2 then refuse_registration('wrong number of arguments to redis.register_function') end
  local name, callback, flags = ...
  local description
  flags = {}
  if argc == 1 then
    local named = name
    if type(named) ~= 'table' then
      refuse_registration('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
    end
    name = nil
    for k, v in pairs(named) do
      if not is_string(k) then refuse_registration('named argument key given to redis.register_function is not a string') end
      local key = string.lower(tostring(k))
      if key == 'function_name' then
        if not is_string(v) then refuse_registration('function_name argument given to redis.register_function must be a string') end
        name = tostring(v)
      elseif key == 'description' then
        if not is_string(v) then refuse_registration('description argument given to redis.register_function must be a string') end
        description = tostring(v)
      elseif key == 'callback' then
        if type(v) ~= 'function' then refuse_registration('callback argument given to redis.register_function must be a function') end
        callback = v
      elseif key == 'flags' then
        if type(v) ~= 'table' then refuse_registration('flags argument to redis.register_function must be a table representing function flags') end
        flags = read_flags(v)
      else
        refuse_registration('unknown argument given to redis.register_function')
      end
    end
    if name == nil then refuse_registration('redis.register_function must get a function name argument') end
    if callback == nil then refuse_registration('redis.register_function must get a callback argument') end
  else
    if not is_string(name) then refuse_registration('first argument to redis.register_function must be a string') end
    name = tostring(name)
    if type(callback) ~= 'function' then refuse_registration('second argument to redis.register_function must be a function') end
  end
  if not string.match(name, '^[%w_]+$') then
    refuse_registration('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
  end
  if pending[name] ~= nil then refuse_registration('Function already exists in the library') end
  pending[name] = {callback = callback, flags = flags, description = description}
end
__percore_functions = {}
-- Calls a registered function with its keys and arguments.
function __percore_call_function(f, keys, args)
  return __percore_run(function() return f(keys, args) end)
end
-- Runs a script, turning any error into a table the host can read.
function __percore_run(f)
  last.msg = nil
  local ok, r = host_pcall(f)
  if ok then return r end
  if r ~= nil and r == last.msg then return {__percore_error = r, line = last.line, counted = last.counted} end
  if type(r) == 'table' and r.err ~= nil then return {__percore_error = r.err, line = r.line} end
  return {__percore_error = tostring(r)}
end
-- Read-only tables, as Redis 7 protects its globals: scripts see the
-- globals and the libraries through proxies that refuse writes, whose
-- metatables cannot be read nor replaced, so no script can change what
-- the next one finds.
do
  local G = _G
  local raw_setmetatable, raw_setfenv = setmetatable, setfenv
  local raw_loadstring, raw_load, raw_rawset = loadstring, load, rawset
  local protected = raw_setmetatable({}, {__mode = 'k'})
  local function refuse() error('Attempt to modify a readonly table', 2) end
  local sealed = raw_setmetatable({}, {__newindex = refuse, __metatable = false})
  local function readonly(t, index)
    local proxy = raw_setmetatable({}, {__index = index or t, __newindex = refuse, __metatable = sealed})
    protected[proxy] = true
    return proxy
  end
  local function missing(k) error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3) end
  -- While a library loads, its globals are only the library API (a
  -- `redis` with register_function, log and the constants), as Redis
  -- swaps its globals' lookup for the load; its callbacks, defined in
  -- this environment, see every global when they run.
  local library_api = nil
  local env = readonly(G, function(_, k)
    local v = rawget(library_api or G, k)
    if v == nil then missing(k) end
    return v
  end)
  local function strict(t)
    return readonly(t, function(_, k)
      local v = rawget(t, k)
      if v == nil then missing(k) end
      return v
    end)
  end
  local r = G.redis
  local library_redis = {register_function = register_function, log = r.log, REDIS_VERSION = r.REDIS_VERSION,
    REDIS_VERSION_NUM = r.REDIS_VERSION_NUM, LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3}
  local library_globals = {redis = strict(library_redis)}
  -- Runs a library's code; its functions, or nil and the error as Redis
  -- words it (a raised table's `err`, else ERR and the message).
  function __percore_load_library(chunk)
    pending, library_api = {}, library_globals
    local ok, e = host_pcall(chunk)
    local registered = pending
    pending, library_api = nil, nil
    if ok then return registered end
    if type(e) == 'table' and e.err ~= nil then return nil, tostring(e.err) end
    return nil, 'ERR ' .. tostring(e)
  end
  local function sandboxed(f)
    if f then raw_setfenv(f, env) end
    return f
  end
  G.setmetatable = function(t, mt)
    if protected[t] then refuse() end
    return raw_setmetatable(t, mt)
  end
  G.rawset = function(t, k, v)
    if protected[t] then refuse() end
    return raw_rawset(t, k, v)
  end
  -- As in Redis, scripts have no getfenv nor setfenv.
  G.getfenv, G.setfenv = nil, nil
  -- Chunks loaded by a script run sandboxed too; bytecode is refused
  -- (it can break the VM).
  G.loadstring = function(s, name)
    if type(s) == 'string' and string.byte(s, 1) == 27 then return nil, 'binary chunks are not allowed' end
    local f, e = raw_loadstring(s, name)
    return sandboxed(f), e
  end
  G.load = function(chunk, name)
    if type(chunk) == 'string' then return G.loadstring(chunk, name) end
    local f, e = raw_load(function()
      local piece = chunk()
      if piece ~= nil and piece ~= '' and string.byte(piece, 1) == 27 then error('binary chunks are not allowed') end
      return piece
    end, name)
    return sandboxed(f), e
  end
  for _, name in ipairs({'redis', 'cjson', 'cmsgpack', 'bit', 'struct', 'string', 'math', 'table'}) do
    if type(G[name]) == 'table' then G[name] = readonly(G[name]) end
  end
  -- A killed script stays killed: pcall and xpcall pass the kill on.
  local raw_pcall, raw_xpcall = pcall, xpcall
  local function killed(e)
    return type(e) == 'table' and e.err == 'Script killed by user with SCRIPT KILL...'
  end
  local function rethrow_kill(ok, ...)
    if not ok and killed((...)) then error((...), 0) end
    if not ok then return ok, error_text((...)) end
    return ok, ...
  end
  G.pcall = function(f, ...) return rethrow_kill(raw_pcall(f, ...)) end
  G.xpcall = function(f, handler)
    return rethrow_kill(raw_xpcall(f, function(e) if killed(e) then return e end return handler(error_text(e)) end))
  end
  G._G = env
  __percore_env = env
  raw_setmetatable(G, {__newindex = refuse, __metatable = sealed})
end
"#;

impl Engine {
    /// The interpreter's memory (INFO's used_memory_vm_eval).
    pub fn memory(&self) -> usize {
        self.lua.used_memory()
    }

    fn new(shard: &Rc<Shard>) -> mlua::Result<Engine> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::BIT, LuaOptions::default())?;
        let run: Rc<RefCell<Option<Run>>> = Rc::new(RefCell::new(None));
        let started = Rc::new(Cell::new(Instant::now()));
        let globals = lua.globals();

        let current = run.clone();
        let call = lua.create_async_function(move |lua, args: MultiValue| {
            let current = current.clone();
            async move { redis_call(&lua, &current, args).await }
        })?;
        globals.set("__percore_call", call)?;
        let current = run.clone();
        globals.set(
            "__percore_setresp",
            lua.create_function(move |lua, v: i64| {
                let proto = match v {
                    2 => Proto::Resp2,
                    3 => Proto::Resp3,
                    // Raised by the prelude as redis.call raises errors.
                    _ => return reply_to_lua(lua, &Reply::Error(CmdError::err("RESP version must be 2 or 3.")), false),
                };
                if let Some(r) = current.borrow().as_ref() {
                    r.client.meta.proto.set(proto);
                }
                Ok(Value::Nil)
            })?,
        )?;
        globals.set("__percore_sha1hex", lua.create_function(|_, s: mlua::LuaString| Ok(sha1_hex(&s.as_bytes())))?)?;
        // A library function's error, caught by pcall, is its message (as
        // a C library's luaL_error gives it: no script line).
        globals.set(
            "__percore_error_text",
            lua.create_function(|lua, e: Value| match e {
                Value::Error(e) => {
                    let message = lua_message(&e);
                    let bare = ["user_script:", "user_function:"]
                        .iter()
                        .find_map(|p| message.strip_prefix(p)?.split_once(": ").map(|(_, m)| m.to_string()));
                    Ok(Value::String(lua.create_string(bare.unwrap_or(message))?))
                }
                other => Ok(other),
            })?,
        )?;
        let version = crate::server::REDIS_VERSION;
        let number = version.split('.').fold(0i64, |n, part| (n << 8) | part.parse::<i64>().unwrap_or(0));
        globals.set("__percore_version", version)?;
        globals.set("__percore_version_num", number)?;
        globals.set("__percore_script_flags", SCRIPT_FLAGS)?;
        globals.set(
            "__percore_log",
            lua.create_function(|_, (level, parts): (i64, MultiValue)| {
                let text: Vec<String> = parts.iter().map(|v| v.to_string().unwrap_or_default()).collect();
                let text = text.join(" ");
                match level {
                    0 => tracing::debug!("{text}"),
                    1 | 2 => tracing::info!("{text}"),
                    _ => tracing::warn!("{text}"),
                }
                Ok(())
            })?,
        )?;
        cjson::register(&lua)?;
        cmsgpack::register(&lua)?;
        lua_struct::register(&lua)?;

        let paused = Rc::new(Cell::new(false));
        WATCH.with(|w| {
            *w.borrow_mut() = Some(Watch {
                server: shard.server.clone(),
                run: run.clone(),
                started: started.clone(),
                last_pause: Cell::new(Instant::now()),
                paused: paused.clone(),
                loading: Cell::new(None),
            })
        });
        // SAFETY: plain Lua API calls on a live state, inside mlua's
        // protected call; the hook only touches this thread's `WATCH`.
        unsafe {
            lua.exec_raw::<()>((), |state| {
                for (global, slot) in [(c"pcall", PCALL_SLOT), (c"xpcall", XPCALL_SLOT)] {
                    ffi::lua_getfield(state, ffi::LUA_GLOBALSINDEX, global.as_ptr());
                    ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, slot.as_ptr());
                }
                ffi::lua_sethook(state, Some(instruction_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
            })?;
        }
        // (After the raw pcall and xpcall are kept: the prelude wraps them.)
        lua.load(PRELUDE).set_name("@percore_prelude").exec()?;
        // A new interpreter starts without the setup's garbage.
        lua.gc_collect()?;
        Ok(Engine {
            lua,
            run,
            started,
            paused,
            turn: futures::lock::Mutex::new(()),
            compiled: RefCell::new(HashSet::new()),
            libraries: RefCell::new(std::collections::HashMap::new()),
            runs: Cell::new(0),
        })
    }

    /// This shard's interpreter.
    pub fn of(shard: &Rc<Shard>) -> Result<Rc<Engine>, CmdError> {
        if let Some(e) = shard.scripts.borrow().as_ref() {
            return Ok(e.clone());
        }
        let engine = Rc::new(Engine::new(shard).map_err(|e| CmdError::err(format!("cannot start Lua: {e}")))?);
        *shard.scripts.borrow_mut() = Some(engine.clone());
        Ok(engine)
    }

    /// The read-only environment scripts and libraries run in.
    fn env(&self) -> Result<Table, CmdError> {
        self.lua.globals().raw_get("__percore_env").map_err(|e| CmdError::err(e.to_string()))
    }

    /// Compiles `body` as the function `f_<sha>` unless it already is.
    pub fn compile(&self, sha: &str, body: &[u8]) -> Result<(), CmdError> {
        if self.compiled.borrow().contains(sha) {
            return Ok(());
        }
        let f = self
            .lua
            .load(body)
            .set_name("@user_script")
            .set_environment(self.env()?)
            .into_function()
            .map_err(|e| CmdError::err(format!("Error compiling script (new function): {}", lua_message(&e))))?;
        self.lua.globals().raw_set(format!("f_{sha}"), f).map_err(|e| CmdError::err(e.to_string()))?;
        self.compiled.borrow_mut().insert(sha.to_string());
        Ok(())
    }

    /// Loads a FUNCTION library (at `version`) unless this interpreter has
    /// it; returns its functions and their flags. `timed`: the library is
    /// new, so its code may run for at most LOAD_TIME.
    pub fn load_library(&self, name: &str, code: &[u8], version: u64, timed: bool) -> Result<Vec<Function>, CmdError> {
        let err = |e: mlua::Error| CmdError::err(lua_message(&e));
        let lua = &self.lua;
        let globals = lua.globals();
        let load: mlua::Function = globals.raw_get("__percore_load_library").map_err(err)?;
        // The shebang line is metadata; keep the line numbering.
        let body = code.iter().position(|&b| b == b'\n').map_or(&[][..], |i| &code[i..]);
        let chunk = lua
            .load(body)
            .set_name("@user_function")
            .set_environment(self.env()?)
            .into_function()
            .map_err(|e| CmdError::err(format!("Error compiling function: {}", lua_message(&e))))?;
        let set_loading = |state| WATCH.with(|w| w.borrow().as_ref().map(|w| w.loading.set(state)));
        set_loading(Some(timed.then(|| Instant::now() + LOAD_TIME)));
        let loaded = load.call::<(Option<Table>, Option<String>)>(chunk);
        set_loading(None);
        let pending = match loaded.map_err(err)? {
            (Some(pending), _) => pending,
            (None, message) => {
                let message = message.unwrap_or_default();
                return Err(CmdError::err(format!(
                    "Error registering functions: {}",
                    message.lines().next().unwrap_or("")
                )));
            }
        };
        let registry: Table = globals.raw_get("__percore_functions").map_err(err)?;
        let mut functions = Vec::new();
        for pair in pending.pairs::<String, Table>() {
            let (fname, entry) = pair.map_err(err)?;
            let callback: mlua::Function = entry.raw_get("callback").map_err(err)?;
            let flags: Vec<String> =
                entry.raw_get::<Table>("flags").map_err(err)?.sequence_values().flatten().collect();
            let description = entry.raw_get::<Option<String>>("description").map_err(err)?;
            registry.raw_set(fname.as_str(), callback).map_err(err)?;
            functions.push(Function { name: fname, flags, description });
        }
        if functions.is_empty() {
            return Err(CmdError::err("No functions registered"));
        }
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        self.libraries.borrow_mut().insert(name.to_string(), version);
        Ok(functions)
    }

    /// Forgets which libraries are loaded (after a failed load left
    /// callbacks of a library that was not accepted).
    pub fn forget_libraries(&self) {
        self.libraries.borrow_mut().clear();
    }

    /// Whether this interpreter has library `name` at `version`.
    pub fn has_library(&self, name: &str, version: u64) -> bool {
        self.libraries.borrow().get(name) == Some(&version)
    }

    /// Runs a compiled script or a registered function with its keys and
    /// arguments as `client`; the effects of its writes (the client's
    /// unit) go to `ops`.
    pub async fn run(
        &self,
        client: Client,
        what: Callable<'_>,
        keys: &[Bytes],
        argv: &[Bytes],
        (read_only, tracker): (bool, Option<crate::server::tracking::Reader>),
        out: &mut RunEffects,
    ) -> Result<Reply, CmdError> {
        let _turn = self.turn.lock().await;
        let lua = &self.lua;
        let err = |e: mlua::Error| CmdError::err(e.to_string());
        let to_table = |items: &[Bytes]| -> mlua::Result<Table> {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(item)?)?;
            }
            Ok(t)
        };
        let globals = lua.globals();
        let (keys_table, argv_table) = (to_table(keys).map_err(err)?, to_table(argv).map_err(err)?);
        let function_call = match what {
            Callable::Function(name, command) => {
                let head = [command, name.as_bytes(), keys.len().to_string().as_bytes()].map(Bytes::copy_from_slice);
                Some((
                    head.into_iter().chain(keys.iter().cloned()).chain(argv.iter().cloned()).collect(),
                    Instant::now(),
                ))
            }
            Callable::Script(_) => None,
        };
        let (runner, f): (mlua::Function, mlua::Function) = match what {
            Callable::Script(sha) => {
                globals.raw_set("KEYS", keys_table.clone()).map_err(err)?;
                globals.raw_set("ARGV", argv_table.clone()).map_err(err)?;
                let f = globals.raw_get(format!("f_{sha}")).map_err(err)?;
                (globals.raw_get("__percore_run").map_err(err)?, f)
            }
            Callable::Function(name, _) => {
                let registry: Table = globals.raw_get("__percore_functions").map_err(err)?;
                let f = registry.raw_get(name).map_err(err)?;
                (globals.raw_get("__percore_call_function").map_err(err)?, f)
            }
        };
        let (name, kill) = match what {
            Callable::Script(sha) => (format!("f_{sha}"), "SCRIPT KILL"),
            Callable::Function(name, _) => (name.to_string(), "FUNCTION KILL"),
        };
        let keys = keys.iter().cloned().collect();
        let borrowed = Vec::new();
        *self.run.borrow_mut() = Some(Run { client, read_only, keys, borrowed, wrote: false, tracker, name, kill });
        self.started.set(Instant::now());
        let server = self.run.borrow().as_ref().map(|r| r.client.shard.server.clone());
        if let Some(s) = &server {
            s.scripts_running.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut running) = s.running_function.lock() {
                *running = function_call;
            }
        }
        let mut call = std::pin::pin!(runner.call_async::<Value>((f, keys_table, argv_table)));
        let result = loop {
            let step = std::future::poll_fn(|cx| match call.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending if self.paused.take() => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            })
            .await;
            match step {
                Some(r) => break r,
                // Let the reactor run: this thread's other clients get BUSY,
                // and one of them may send SCRIPT KILL.
                None => crate::server::poller::sleep(PAUSE).await,
            }
        };
        if let Some(s) = &server
            && s.scripts_running.fetch_sub(1, Ordering::Relaxed) == 1
        {
            s.script_busy.store(false, Ordering::Relaxed);
            s.script_kill.store(false, Ordering::Relaxed);
            s.script_wrote.store(false, Ordering::Relaxed);
            if let Ok(mut running) = s.running_function.lock() {
                *running = None;
            }
        }
        let finished = self.run.borrow_mut().take();
        let resp3 = finished.as_ref().is_some_and(|r| r.client.proto() == Proto::Resp3);
        if let Some(mut r) = finished {
            out.ops.extend(r.client.unit.take().unwrap_or_default());
            out.borrowed.append(&mut r.borrowed);
        }
        let reply = match result {
            Ok(v) => lua_to_reply(&v, what, resp3, 0),
            Err(e) => Err(script_error(&lua_message(&e), None, what)),
        };
        self.runs.set(self.runs.get() + 1);
        if self.runs.get() == GC_PERIOD {
            self.runs.set(0);
            // SAFETY: one collector step on a live state, inside mlua's
            // protected call. An error only leaves garbage for the next.
            let _ = unsafe {
                lua.exec_raw::<()>((), |state| {
                    ffi::lua_gc(state, ffi::LUA_GCSTEP, GC_PERIOD as std::ffi::c_int);
                })
            };
        }
        reply
    }
}

/// A FUNCTION library: its code and its functions with their flags.
#[derive(Clone, Debug)]
pub struct Library {
    pub code: std::sync::Arc<[u8]>,
    pub functions: Vec<Function>,
    /// Bumped on every (re)load, so each shard knows when to load again.
    pub version: u64,
}

/// A function a library registered.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub flags: Vec<String>,
    pub description: Option<String>,
}

/// Every loaded library, by name (shared by all shards).
#[derive(Default, Debug)]
pub struct Libraries {
    pub libs: std::collections::BTreeMap<String, Library>,
    pub next_version: u64,
}

impl Libraries {
    /// The library that registered `function` (named in any case), and
    /// the function as registered.
    pub fn find(&self, function: &str) -> Option<(&String, &Library, &Function)> {
        self.libs.iter().find_map(|(name, lib)| {
            lib.functions.iter().find(|f| f.name.eq_ignore_ascii_case(function)).map(|f| (name, lib, f))
        })
    }
}

/// The library name in a `#!lua name=<name>` first line.
pub fn library_name(code: &[u8]) -> Result<String, CmdError> {
    if !code.starts_with(b"#!") {
        return Err(CmdError::err("Missing library metadata"));
    }
    let invalid = || CmdError::err("Invalid library metadata");
    let end = code.iter().position(|&b| b == b'\n').ok_or_else(invalid)?;
    // Split as Redis's sdssplitargs does (quotes allowed).
    let (mut scratch, mut spans) = (Vec::new(), Vec::new());
    crate::protocol::resp::split_args(&code[..end], &mut scratch, &mut spans).map_err(|_| invalid())?;
    let parts: Vec<String> = spans
        .iter()
        .map(|&(o, l)| String::from_utf8_lossy(&scratch[o as usize..(o + l) as usize]).into_owned())
        .collect();
    let (first, rest) = parts.split_first().ok_or_else(invalid)?;
    let engine = first.get(2..).unwrap_or("");
    let mut name = None;
    for part in rest {
        match part.get(..5).filter(|p| p.eq_ignore_ascii_case("name=")) {
            Some(_) if name.is_some() => {
                return Err(CmdError::err("Invalid metadata value, name argument was given multiple times"));
            }
            Some(_) => name = Some(part[5..].to_string()),
            None => return Err(CmdError::err(format!("Invalid metadata value given: {part}"))),
        }
    }
    let name = name.ok_or_else(|| CmdError::err("Library name was not given"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(CmdError::err(
            "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ));
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(CmdError::err(format!("Engine '{engine}' not found")));
    }
    Ok(name)
}

/// What `Engine::run` runs.
#[derive(Clone, Copy)]
pub enum Callable<'a> {
    /// EVAL / EVALSHA, by SHA1.
    Script(&'a str),
    /// FCALL or FCALL_RO (as the client wrote it), by function name.
    Function(&'a str, &'a [u8]),
}

/// An error raised by a library function written in Rust, located at the
/// script line that called it ("user_script:3: ..."), as Lua's own C
/// libraries report theirs. A tail call (`return cjson.decode(x)`) leaves
/// no calling frame in LuaJIT: then the nearest script frame further up
/// names the line, or line 1 (right for one-line scripts).
fn located(lua: &Lua, message: impl std::fmt::Display) -> mlua::Error {
    let user_frame = |level: usize| {
        lua.inspect_stack(level, |d| {
            let source = d.source().source.map(|s| s.to_string()).unwrap_or_default();
            let name = source.strip_prefix('@').filter(|n| *n == "user_script" || *n == "user_function")?.to_string();
            Some((name, d.current_line()?))
        })
    };
    let mut at = None;
    for level in 1.. {
        match user_frame(level) {
            None => break,
            Some(None) => continue,
            Some(found) => {
                at = found;
                break;
            }
        }
    }
    let (name, line) = at.unwrap_or_else(|| ("user_script".to_string(), 1));
    mlua::Error::runtime(format!("{name}:{line}: {message}"))
}

/// A library function (cjson, cmsgpack, struct) whose errors name the
/// script line that called it.
pub(crate) fn library_fn<A, R>(
    lua: &Lua,
    f: impl Fn(&Lua, A) -> mlua::Result<R> + 'static,
) -> mlua::Result<mlua::Function>
where
    A: mlua::FromLuaMulti,
    R: mlua::IntoLuaMulti,
{
    lua.create_function(move |lua, args: A| f(lua, args).map_err(|e| located(lua, lua_message(&e))))
}

/// The message of a Lua error without mlua's decoration.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
}

/// An error a script ended with, in Redis's words: the message (with
/// `ERR` when it has no code of its own), then which script and line.
fn script_error(message: &str, line: Option<i64>, what: Callable) -> CmdError {
    let message = message.lines().next().unwrap_or("");
    let message = message.strip_prefix("runtime error: ").unwrap_or(message).to_string();
    let line = line.or_else(|| {
        let rest = message.strip_prefix("user_script:").or_else(|| message.strip_prefix("user_function:"))?;
        rest.split(':').next().and_then(|n| n.parse().ok())
    });
    let coded = message.split(' ').next().is_some_and(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase()));
    let message = if coded { message } else { format!("ERR {message}") };
    let (name, source) = match what {
        Callable::Script(sha) => (sha, "user_script"),
        Callable::Function(name, _) => (name, "user_function"),
    };
    let at = line.map_or(String::new(), |l| format!(", on @{source}:{l}"));
    CmdError::Raw(format!("{message} script: {name}{at}."))
}

/// redis.call / redis.pcall: runs a command; an error comes back as an
/// `{err = ...}` table, which the Lua wrapper of redis.call raises.
async fn redis_call(lua: &Lua, current: &Rc<RefCell<Option<Run>>>, args: MultiValue) -> mlua::Result<Value> {
    // `counted`: a command's own failure, already in the error stats, so
    // a script that returns it as its reply is not counted again (Redis's
    // ignore_err_stats_update).
    let err_table = |msg: String, counted: bool| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set("err", msg)?;
        if counted {
            t.raw_set("counted", true)?;
        }
        Ok(Value::Table(t))
    };
    let error = |msg: String| err_table(msg, false);
    let failed = |msg: String| err_table(msg, true);
    let mut owned = OwnedArgs::default();
    for v in args.iter() {
        match v {
            Value::String(s) => owned.push(&s.as_bytes()),
            Value::Integer(n) => owned.push(n.to_string().as_bytes()),
            // Redis passes numbers on as `%.17g` prints them.
            Value::Number(n) => owned.push(cjson::format_g(*n, 17).as_bytes()),
            _ => return error("ERR Lua redis lib command arguments must be strings or integers".into()),
        }
    }
    if owned.len() == 0 {
        return error("ERR Please specify at least one argument for this redis lib call".into());
    }
    let args = owned.args();
    let Some((table, anything, shard)) = current.borrow().as_ref().map(|run| {
        let shard = run.client.shard.clone();
        (shard.server.commands, shard.server.scripts_may_run_anything.load(Ordering::Relaxed), shard)
    }) else {
        return error("ERR redis.call outside of a script".into());
    };
    // The command is refused before it runs: counted as an error reply
    // and, for a known command, its rejected call, as Redis's scriptCall
    // counts one (so the script's own error reply is not counted again).
    let refuse = |spec: Option<&'static crate::server::client::Spec>, msg: &str| {
        let mut stats = shard.cmdstats.borrow_mut();
        if let Some(spec) = spec {
            stats.rejected(spec, args);
        }
        stats.error(msg);
        drop(stats);
        failed(msg.into())
    };
    let Some(spec) = table.lookup(args.get(0)) else {
        return refuse(None, "ERR Unknown Redis command called from script");
    };
    if spec.arity_broken(args).is_some() {
        return refuse(Some(spec), "ERR Wrong number of args calling Redis command from script");
    }
    if spec.has(command::NOSCRIPT) && !anything {
        return refuse(Some(spec), "ERR This Redis command is not allowed from script");
    }
    let Some(mut run) = current.borrow_mut().take() else {
        return error("ERR redis.call outside of a script".into());
    };
    // Until a script writes, it can be stopped: a write needs the good
    // replicas min-replicas-to-write asks for and, for one that grows
    // memory, memory under maxmemory.
    let refusal = if run.read_only && spec.has(WRITE | crate::command::MAY_REPLICATE) {
        // PUBLISH and the like replicate: a read-only script may not either.
        Some("ERR Write commands are not allowed from read-only scripts.")
    } else if spec.has(WRITE) && !run.wrote && crate::persistence::rdb::writes_refused(&shard.server) {
        Some(crate::persistence::rdb::MISCONF)
    } else if spec.has(WRITE) && !run.wrote && shard.server.repl.too_few_replicas(&shard.server) {
        Some(crate::server::dispatch::NOREPLICAS)
    } else if spec.has(crate::command::DENYOOM) && !run.wrote && run.client.meta.out_of_memory.get() {
        Some(crate::server::dispatch::OOM)
    } else {
        None
    };
    if let Some(refusal) = refusal {
        *current.borrow_mut() = Some(run);
        return refuse(Some(spec), refusal);
    }
    let (db, holder) = (run.client.db(), run.client.meta.id);
    for i in spec.keys.positions(args) {
        let key = args.get(i);
        let owner = shard.owner(key);
        let borrowed = |run: &Run| run.borrowed.iter().any(|(_, d, k)| *d == db && &k[..] == key);
        if run.keys.contains(key) || borrowed(&run) {
            continue;
        }
        // A key the script did not declare (Redis, outside cluster mode,
        // lets scripts touch any key): locked for the rest of the script,
        // on whichever core, so no other command interleaves with it while
        // the script waits on another core.
        let k: Key = key.into();
        let taken =
            shard.run_on_async(owner, move |sh| async move { sh.lock_key_within(holder, db, k, PATIENCE).await });
        match taken.await {
            Some(true) => run.borrowed.push((owner, db, key.into())),
            Some(false) => {}
            None => {
                *current.borrow_mut() = Some(run);
                let msg = format!(
                    "ERR Script attempted to access key '{}' which was not declared in KEYS and is in use",
                    String::from_utf8_lossy(key)
                );
                return refuse(Some(spec), &msg);
            }
        }
    }
    if spec.has(WRITE) {
        run.wrote = true;
        shard.server.script_wrote.store(true, Ordering::Relaxed);
    }
    if crate::server::monitor::active(&run.client) {
        crate::server::monitor::feed(&run.client, spec, args, true).await;
    }
    let result = execute(&mut run.client, spec, args, true).await;
    if spec.has(crate::command::READONLY)
        && let Some(reader) = run.tracker.take()
    {
        run.client.remember_keys(reader, run.keys.iter().map(|k| k[..].into()).collect()).await;
    }
    let resp3 = run.client.proto() == Proto::Resp3;
    *current.borrow_mut() = Some(run);
    match result {
        Ok(reply) => reply_to_lua(lua, &reply, resp3),
        Err(e) => failed(e.to_string()),
    }
}

/// A command's reply as a script sees it (RESP2 conversions).
fn reply_to_lua(lua: &Lua, reply: &Reply, resp3: bool) -> mlua::Result<Value> {
    let table = |field: &str, value: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(field, value)?;
        Ok(Value::Table(t))
    };
    let status = |s: &str| table("ok", Value::String(lua.create_string(s)?));
    let array = |items: Vec<&Reply>| -> mlua::Result<Value> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.into_iter().enumerate() {
            t.raw_set(i + 1, reply_to_lua(lua, item, resp3)?)?;
        }
        Ok(Value::Table(t))
    };
    Ok(match reply {
        Reply::Ok => return status("OK"),
        Reply::Status(s) => return status(s),
        Reply::Int(n) => Value::Integer(*n),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Null | Reply::NullArray | Reply::Nothing | Reply::Attribute(_) if resp3 => Value::Nil,
        Reply::Null | Reply::NullArray | Reply::Nothing | Reply::Attribute(_) => Value::Boolean(false),
        // Attributes describe the reply after them; Lua gets that reply.
        Reply::Seq(items) if matches!(items.as_slice(), [Reply::Attribute(_), _]) => {
            return reply_to_lua(lua, &items[1], resp3);
        }
        Reply::Array(items) | Reply::Push(items) | Reply::Seq(items) => return array(items.iter().collect()),
        Reply::Set(items) if resp3 => {
            let t = lua.create_table_with_capacity(0, items.len())?;
            for item in items {
                t.raw_set(reply_to_lua(lua, item, resp3)?, true)?;
            }
            return table("set", Value::Table(t));
        }
        Reply::Set(items) => return array(items.iter().collect()),
        Reply::Map(pairs) if resp3 => {
            let t = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                t.raw_set(reply_to_lua(lua, k, resp3)?, reply_to_lua(lua, v, resp3)?)?;
            }
            return table("map", Value::Table(t));
        }
        Reply::Pairs(pairs) if resp3 => {
            let t = lua.create_table_with_capacity(pairs.len(), 0)?;
            for (i, (a, b)) in pairs.iter().enumerate() {
                t.raw_set(i + 1, array(vec![a, b])?)?;
            }
            Value::Table(t)
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) => return array(pairs.iter().flat_map(|(a, b)| [a, b]).collect()),
        Reply::BulkArray(encoded) => {
            let items = Reply::bulk_array_items(encoded);
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(item)?)?;
            }
            Value::Table(t)
        }
        Reply::Double(d) if resp3 => return table("double", Value::Number(*d)),
        Reply::Double(d) => Value::String(lua.create_string(format_double(*d))?),
        Reply::DoubleText(text) if resp3 => return table("double", Value::Number(text.parse().unwrap_or(0.0))),
        Reply::DoubleText(text) => Value::String(lua.create_string(text)?),
        Reply::BigNum(digits) if resp3 => return table("big_number", Value::String(lua.create_string(digits)?)),
        Reply::BigNum(digits) => Value::String(lua.create_string(digits)?),
        Reply::Bool(b) if resp3 => Value::Boolean(*b),
        Reply::Bool(b) => Value::Integer(*b as i64),
        Reply::Verbatim(b) if resp3 => {
            let v = lua.create_table()?;
            v.raw_set("format", "txt")?;
            v.raw_set("string", lua.create_string(b)?)?;
            return table("verbatim_string", Value::Table(v));
        }
        Reply::Verbatim(b) => Value::String(lua.create_string(b)?),
        Reply::Error(e) => return table("err", Value::String(lua.create_string(e.to_string())?)),
    })
}

/// What a script returned, as a reply: Redis's Lua-to-RESP rules, with
/// the RESP3 shapes (`{map=}`, `{set=}`, `{double=}`...) that RESP2
/// clients get downgraded, and booleans as RESP3 booleans once the script
/// chose RESP3.
/// How deep a script's reply may nest: past it (a table that contains
/// itself), the innermost element is Redis's "reached lua stack limit".
const MAX_REPLY_DEPTH: usize = 1000;

fn lua_to_reply(v: &Value, what: Callable, resp3: bool, depth: usize) -> Result<Reply, CmdError> {
    if depth >= MAX_REPLY_DEPTH {
        return Ok(Reply::Error(CmdError::err("reached lua stack limit")));
    }
    let convert = |v: &Value| lua_to_reply(v, what, resp3, depth + 1);
    Ok(match v {
        Value::Nil => Reply::Null,
        Value::Boolean(b) if resp3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Null,
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(n) => Reply::Int(*n as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => {
            let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
            // A command's failure (raised by redis.call, or returned from
            // redis.pcall) was counted when the command failed.
            let counted = matches!(field("counted"), Value::Boolean(true));
            if let Value::String(e) = field("__percore_error") {
                let line = t.raw_get::<Option<i64>>("line").ok().flatten();
                let error = script_error(&e.to_string_lossy(), line, what);
                return Err(if counted { CmdError::Counted(error.to_string()) } else { error });
            }
            if let Value::String(e) = field("err") {
                let text = e.to_string_lossy();
                return Ok(Reply::Error(if counted { CmdError::Counted(text) } else { CmdError::Raw(text) }));
            }
            if let Value::String(s) = field("ok") {
                return Ok(Reply::Status(s.to_string_lossy().into()));
            }
            match (field("double"), field("map"), field("set"), field("big_number"), field("verbatim_string")) {
                (Value::Number(d), ..) => return Ok(Reply::Double(d)),
                (Value::Integer(d), ..) => return Ok(Reply::Double(d as f64)),
                (_, Value::Table(m), ..) => {
                    let pairs = m.pairs::<Value, Value>().flatten();
                    return pairs
                        .map(|(k, v)| Ok((convert(&k)?, convert(&v)?)))
                        .collect::<Result<_, _>>()
                        .map(Reply::Map);
                }
                (_, _, Value::Table(m), ..) => {
                    let members = m.pairs::<Value, Value>().flatten();
                    return members.map(|(k, _)| convert(&k)).collect::<Result<_, _>>().map(Reply::Set);
                }
                // A big number is one line: line breaks become spaces, as
                // Redis sanitizes it.
                (_, _, _, Value::String(n), _) => {
                    let digits = n.to_string_lossy().replace(['\r', '\n'], " ");
                    return Ok(Reply::BigNum(digits));
                }
                (_, _, _, _, Value::Table(v)) => {
                    if let Ok(Value::String(s)) = v.raw_get::<Value>("string") {
                        return Ok(Reply::Verbatim(Bytes::copy_from_slice(&s.as_bytes())));
                    }
                }
                _ => {}
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(item) => items.push(convert(&item)?),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Null,
    })
}
