//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FUNCTION, FCALL and
//! FCALL_RO. The interpreter is in `crate::scripting`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::future::LocalBoxFuture;

use super::{Handler, Spec};
use crate::command::{
    ALLOW_BUSY, Args, CONTAINER, DENYOOM, Keys, MAY_REPLICATE, NOSCRIPT, READONLY, SCRIPT, STALE, WRITE,
};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::scripting::{Callable, Engine, Library, RunEffects, SCRIPT_FLAGS, library_name, sha1_hex};
use crate::server::client::Client;
use crate::server::transaction::Tx;

/// The flags a script declares on its `#!lua flags=a,b` first line; None
/// without a shebang (a script of the old kind). Errors as Redis words
/// them (evalExtractShebangFlags).
fn shebang(body: &[u8]) -> Result<Option<Vec<String>>, CmdError> {
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let end = body.iter().position(|&b| b == b'\n').ok_or_else(|| CmdError::err("Invalid script shebang"))?;
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_whitespace();
    let engine = parts.next().unwrap_or("");
    if engine != "#!lua" {
        return Err(CmdError::err(format!("Unexpected engine in script shebang: {engine}")));
    }
    let mut flags = Vec::new();
    for part in parts {
        let Some(declared) = part.strip_prefix("flags=") else {
            return Err(CmdError::err(format!("Unknown lua shebang option: {part}")));
        };
        for flag in declared.split(',').filter(|_| !declared.is_empty()) {
            if !SCRIPT_FLAGS.contains(&flag) {
                return Err(CmdError::err(format!("Unexpected flag in script shebang: {flag}")));
            }
            flags.push(flag.to_string());
        }
    }
    Ok(Some(flags))
}

/// A valid script's declared flags (None for a script of the old kind).
fn shebang_flags(body: &[u8]) -> Option<Vec<String>> {
    shebang(body).ok().flatten()
}

/// A call's flags once a script or function declares its own (Redis's
/// scriptFlagsToCmdFlags): a write unless no-writes, refused over
/// maxmemory unless allow-oom (no-writes implies it), allowed on stale
/// data only with allow-stale.
fn declared(flags: u32, script_flags: &[String]) -> u32 {
    let has = |f: &str| script_flags.iter().any(|x| x == f);
    let mut flags = flags & !(STALE | DENYOOM | WRITE | MAY_REPLICATE);
    if !has("allow-oom") && !has("no-writes") {
        flags |= DENYOOM;
    }
    if !has("no-writes") {
        flags |= WRITE;
    }
    if has("allow-stale") {
        flags |= STALE;
    }
    flags
}

/// EVAL / EVALSHA as their script declares itself.
fn eval_flags(client: &Client, args: Args) -> u32 {
    let Some(spec) = super::table().lookup(args.get(0)) else { return 0 };
    let body = if spec.name.starts_with("evalsha") {
        cached(client, &String::from_utf8_lossy(args.get(1)).to_ascii_lowercase())
    } else {
        Some(Arc::from(args.get(1)))
    };
    match body.as_deref().and_then(shebang_flags) {
        Some(flags) => declared(spec.flags, &flags),
        None => spec.flags,
    }
}

/// FCALL as its function declares itself.
fn fcall_flags(client: &Client, args: Args) -> u32 {
    let Some(spec) = super::table().lookup(args.get(0)) else { return 0 };
    let Ok(libraries) = client.shard.server.libraries.read() else { return spec.flags };
    match libraries.find(&String::from_utf8_lossy(args.get(1))) {
        Some((_, _, f)) => declared(spec.flags, &f.flags),
        None => spec.flags,
    }
}

const FUNCTION_FLAGS: u32 = CONTAINER | NOSCRIPT | STALE | ALLOW_BUSY;

/// FUNCTION LOAD and RESTORE grow memory: refused over maxmemory.
fn function_flags(_: &Client, args: Args) -> u32 {
    let grows = args.len() > 1 && (args.is(1, "LOAD") || args.is(1, "RESTORE"));
    if grows { FUNCTION_FLAGS | DENYOOM } else { FUNCTION_FLAGS }
}

/// The cached body of script `sha`, if any.
fn cached(client: &Client, sha: &str) -> Option<Arc<[u8]>> {
    client.shard.server.scripts.read().ok()?.get(sha).cloned()
}

/// Caches a script its caller has checked (`shebang`).
fn cache(client: &Client, body: &[u8]) -> (String, Arc<[u8]>) {
    let sha = sha1_hex(body);
    let body: Arc<[u8]> = body.into();
    if let Ok(mut scripts) = client.shard.server.scripts.write() {
        scripts.entry(sha.clone()).or_insert_with(|| body.clone());
    }
    (sha, body)
}

/// The keys and arguments after `numkeys` (argument 2) of EVAL and FCALL.
/// `bad_count`: the error for a numkeys that is not a number (FCALL has
/// its own).
fn keys_and_args(args: Args, bad_count: Option<&str>) -> Result<(Vec<Bytes>, Vec<Bytes>), CmdError> {
    let numkeys = match (args.int(2), bad_count) {
        (Ok(n), _) => n,
        (Err(_), Some(message)) => return Err(CmdError::err(message)),
        (Err(e), None) => return Err(e),
    };
    if numkeys < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    if numkeys as u64 > (args.len() - 3) as u64 {
        return Err(CmdError::err("Number of keys can't be greater than number of args"));
    }
    let split = 3 + numkeys as usize;
    let keys = (3..split).map(|i| Bytes::copy_from_slice(args.get(i))).collect();
    Ok((keys, (split..args.len()).map(|i| Bytes::copy_from_slice(args.get(i))).collect()))
}

/// Where a script or function runs: the shard of its declared keys when
/// they share one (then every call on them stays on that thread).
fn target_shard(client: &Client, keys: &[Bytes]) -> usize {
    let owners: BTreeSet<usize> = keys.iter().map(|k| client.shard.owner(k)).collect();
    if owners.len() == 1 { owners.into_iter().next().unwrap_or(client.shard.id) } else { client.shard.id }
}

/// A script or a function, with what a shard needs to run it.
enum Runnable {
    Script {
        sha: String,
        body: Arc<[u8]>,
    },
    /// `command`: FCALL or FCALL_RO as the client wrote it (FUNCTION STATS
    /// shows the call so).
    Function {
        name: String,
        command: Bytes,
        lib_name: String,
        lib: Library,
    },
}

/// Runs a script or function on the shard of its keys, holding their locks.
/// `undeclared`: a script without flags, whose first write that may grow
/// memory is refused when it started over maxmemory (one with flags was
/// judged by them at the gate).
async fn run_locked(
    client: &mut Client,
    keys: Vec<Bytes>,
    argv: Vec<Bytes>,
    (read_only, undeclared): (bool, bool),
    what: Runnable,
) -> CmdResult {
    let target = target_shard(client, &keys);
    let (db, id) = (client.db(), client.meta.id);
    let tracker = client.meta.tracking.borrow().remembers().then(|| client.tracker());
    let deny_oom = undeclared && client.meta.out_of_memory.get();
    let mut tx = Tx::lock(client, db, keys.iter().map(|k| &k[..])).await;
    let now = client.unit_now();
    let result = client
        .shard
        .run_on_async(target, move |sh| async move {
            let engine = Engine::of(&sh)?;
            let callable = match &what {
                Runnable::Script { sha, body } => {
                    engine.compile(sha, body)?;
                    Callable::Script(sha)
                }
                Runnable::Function { name, command, lib_name, lib } => {
                    if !engine.has_library(lib_name, lib.version) {
                        engine.load_library(lib_name, &lib.code, lib.version, false)?;
                    }
                    Callable::Function(name, command)
                }
            };
            let mut effects = RunEffects::default();
            let script_client = Client::for_script(sh.clone(), id, db, now);
            script_client.meta.out_of_memory.set(deny_oom);
            let result = engine.run(script_client, callable, &keys, &argv, (read_only, tracker), &mut effects).await;
            Ok((result, effects))
        })
        .await;
    // The script's writes are one record (Redis 7's effects replication),
    // stamped before its keys are released; inside EXEC, part of its unit.
    let (result, borrowed) = match result {
        Ok((result, effects)) => {
            client.propagate(effects.ops);
            (result, effects.borrowed)
        }
        Err(e) => (Err(e), Vec::new()),
    };
    for (owner, db, key) in borrowed {
        tx.adopt(owner, db, key);
    }
    tx.unlock().await;
    result
}

async fn eval(client: &mut Client, args: Args<'_>, by_sha: bool, read_only: bool) -> CmdResult {
    let (keys, argv) = keys_and_args(args, None)?;
    let (sha, body, declared) = if by_sha {
        let sha = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        let body = cached(client, &sha)
            .ok_or_else(|| CmdError::Raw("NOSCRIPT No matching script. Please use EVAL.".into()))?;
        let declared = shebang(&body)?;
        (sha, body, declared)
    } else {
        let declared = shebang(args.get(1))?;
        let (sha, body) = cache(client, args.get(1));
        (sha, body, declared)
    };
    // A script that declares no-writes runs read-only, whatever ran it.
    let declared_read_only = declared.as_ref().is_some_and(|f| f.iter().any(|x| x == "no-writes"));
    let modes = (read_only || declared_read_only, declared.is_none());
    run_locked(client, keys, argv, modes, Runnable::Script { sha, body }).await
}

async_handler!(eval_cmd, |c, a| eval(c, a, false, false));
async_handler!(evalsha, |c, a| eval(c, a, true, false));
async_handler!(eval_ro, |c, a| eval(c, a, false, true));
async_handler!(evalsha_ro, |c, a| eval(c, a, true, true));

async fn fcall(client: &mut Client, args: Args<'_>, read_only: bool) -> CmdResult {
    // (Names are case-insensitive: `name` becomes the registered one.)
    let (name, lib_name, lib, flags) = {
        let libraries =
            client.shard.server.libraries.read().map_err(|_| CmdError::err("function registry poisoned"))?;
        let found = libraries.find(&String::from_utf8_lossy(args.get(1)));
        let (lib_name, lib, f) = found.ok_or_else(|| CmdError::err("Function not found"))?;
        (f.name.clone(), lib_name.clone(), lib.clone(), f.flags.clone())
    };
    let (keys, argv) = keys_and_args(args, Some("Bad number of keys provided"))?;
    let no_writes = flags.iter().any(|f| f == "no-writes");
    if read_only && !no_writes {
        return Err(CmdError::err("Can not execute a script with write flag using *_ro command."));
    }
    let command = Bytes::copy_from_slice(args.get(0));
    run_locked(client, keys, argv, (no_writes, false), Runnable::Function { name, command, lib_name, lib }).await
}

async_handler!(fcall_cmd, |c, a| fcall(c, a, false));
async_handler!(fcall_ro, |c, a| fcall(c, a, true));

/// FUNCTION LOAD [REPLACE] code: loads here to learn the functions, then
/// publishes the library for every shard.
fn function_load(client: &Client, replace: bool, code: &[u8]) -> CmdResult {
    let name = library_name(code)?;
    let server = &client.shard.server;
    let mut libraries = server.libraries.write().map_err(|_| CmdError::err("function registry poisoned"))?;
    if libraries.libs.contains_key(&name) && !replace {
        return Err(CmdError::err(format!("Library '{name}' already exists")));
    }
    libraries.next_version += 1;
    let version = libraries.next_version;
    let engine = Engine::of(&client.shard)?;
    let functions = engine.load_library(&name, code, version, true).inspect_err(|_| engine.forget_libraries())?;
    for f in &functions {
        if let Some((other, ..)) = libraries.find(&f.name)
            && *other != name
        {
            engine.forget_libraries();
            return Err(CmdError::err(format!("Function {} already exists", f.name)));
        }
    }
    libraries.libs.insert(name.clone(), Library { code: code.into(), functions, version });
    Ok(Reply::text(name))
}

/// FUNCTION RESTORE payload [APPEND|REPLACE|FLUSH]: all of the payload's
/// libraries or, on any error, none (the libraries before stay).
fn function_restore(client: &Client, payload: &[u8], policy: &str) -> CmdResult {
    let body = crate::rdb::read::verify_payload(payload)
        .ok_or_else(|| CmdError::err("DUMP payload version or checksum are wrong"))?;
    let codes = crate::rdb::read::function_payload(body).map_err(CmdError::err)?;
    let server = &client.shard.server;
    let before = {
        let mut l = server.libraries.write().map_err(|_| CmdError::err("function registry poisoned"))?;
        let before = l.libs.clone();
        if policy == "FLUSH" {
            l.libs.clear();
        }
        before
    };
    let loaded = codes.iter().try_for_each(|code| {
        if policy == "APPEND" {
            let name = library_name(code)?;
            if server.libraries.read().is_ok_and(|l| l.libs.contains_key(&name)) {
                return Err(CmdError::err(format!("Library {name} already exists")));
            }
        }
        function_load(client, true, code).map(drop)
    });
    if let Err(e) = loaded {
        // Back as they were, each at a new version so every shard loads
        // it again.
        if let Ok(mut l) = server.libraries.write() {
            l.libs = before;
            let mut v = l.next_version;
            l.libs.values_mut().for_each(|lib| {
                v += 1;
                lib.version = v;
            });
            l.next_version = v;
        }
        return Err(e);
    }
    Ok(Reply::Ok)
}

fn function_list(client: &Client, args: Args) -> CmdResult {
    let mut with_code = false;
    let mut pattern = None;
    let mut j = 2;
    while j < args.len() {
        if !with_code && args.is(j, "WITHCODE") {
            with_code = true;
            j += 1;
        } else if pattern.is_none() && args.is(j, "LIBRARYNAME") {
            if j + 1 >= args.len() {
                return Err(CmdError::err("library name argument was not given"));
            }
            pattern = Some(args.get(j + 1).to_vec());
            j += 2;
        } else {
            return Err(CmdError::err(format!("Unknown argument {}", args.str(j))));
        }
    }
    let libraries = client.shard.server.libraries.read().map_err(|_| CmdError::err("function registry poisoned"))?;
    let listed = libraries
        .libs
        .iter()
        .filter(|(name, _)| pattern.as_ref().is_none_or(|p| crate::pattern::glob_match(p, name.as_bytes(), true)))
        .map(|(name, lib)| {
            let functions = lib
                .functions
                .iter()
                .map(|f| {
                    Reply::Map(vec![
                        (Reply::text("name"), Reply::text(f.name.clone())),
                        (Reply::text("description"), f.description.clone().map_or(Reply::Null, Reply::text)),
                        (
                            Reply::text("flags"),
                            Reply::Set(f.flags.iter().map(|x| Reply::Status(x.clone().into())).collect()),
                        ),
                    ])
                })
                .collect();
            let mut fields = vec![
                (Reply::text("library_name"), Reply::text(name.clone())),
                (Reply::text("engine"), Reply::text("LUA")),
                (Reply::text("functions"), Reply::Array(functions)),
            ];
            if with_code {
                fields.push((Reply::text("library_code"), Reply::Bulk(Bytes::copy_from_slice(&lib.code))));
            }
            Reply::Map(fields)
        });
    Ok(Reply::Array(listed.collect()))
}

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Print this help.",
];

fn function(client: &mut Client, args: Args) -> CmdResult {
    let sub = args.keyword(1);
    let n = args.len();
    let server = &client.shard.server;
    refuse_while_busy(server, &sub)?;
    match sub.as_str() {
        "HELP" if n == 2 => Ok(Reply::help(FUNCTION_HELP)),
        "LOAD" if n >= 3 => {
            if let Some(i) = (2..n - 1).find(|&i| !args.is(i, "REPLACE")) {
                return Err(CmdError::err(format!("Unknown option given: {}", args.str(i))));
            }
            function_load(client, n > 3, args.get(n - 1))
        }
        "DELETE" if n == 3 => {
            let name = args.str(2);
            let mut libraries = server.libraries.write().map_err(|_| CmdError::err("function registry poisoned"))?;
            libraries.libs.remove(&name).map(|_| Reply::Ok).ok_or_else(|| CmdError::err("Library not found"))
        }
        "FLUSH" if n == 2 || (n == 3 && (args.is(2, "ASYNC") || args.is(2, "SYNC"))) => {
            if let Ok(mut libraries) = server.libraries.write() {
                libraries.libs.clear();
            }
            Ok(Reply::Ok)
        }
        "FLUSH" if n == 3 => Err(CmdError::err("FUNCTION FLUSH only supports SYNC|ASYNC option")),
        "LIST" => function_list(client, args),
        "DUMP" if n == 2 => {
            let libraries = server.libraries.read().map_err(|_| CmdError::err("function registry poisoned"))?;
            let codes = libraries.libs.values().map(|l| &l.code[..]);
            Ok(Reply::bulk(&crate::rdb::write::functions_dump(codes, server.hot.rdb_options())))
        }
        "RESTORE" if n == 3 || n == 4 => {
            let policy = if n == 4 { args.keyword(3) } else { "APPEND".to_string() };
            if !matches!(policy.as_str(), "APPEND" | "REPLACE" | "FLUSH") {
                return Err(CmdError::err(
                    "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
                ));
            }
            function_restore(client, args.get(2), &policy)
        }
        "KILL" if n == 2 => kill(server, false),
        "STATS" if n == 2 => function_stats(server),
        "HELP" | "LOAD" | "DELETE" | "KILL" | "STATS" | "DUMP" => Err(CmdError::arity(&format!("function|{sub}"))),
        "FLUSH" | "RESTORE" => Err(CmdError::SubcommandSyntax { cmd: "FUNCTION".into(), sub: args.str(1) }),
        _ => Err(CmdError::UnknownSubcommand { cmd: "FUNCTION".into(), sub: args.str(1) }),
    }
}

/// FUNCTION STATS: the running function, and what is loaded.
fn function_stats(server: &crate::server::shared::Shared) -> CmdResult {
    // A busy EVAL script is not a function: FUNCTION STATS is refused then.
    if server.scripts_running.load(Ordering::Relaxed) > 0 && !server.function_running() {
        return Err(server.busy_error());
    }
    let running = match server.running_function.lock().ok().and_then(|f| f.clone()) {
        None => Reply::Null,
        Some((command, started)) => Reply::Map(vec![
            (Reply::text("name"), Reply::Bulk(command.get(1).cloned().unwrap_or_default())),
            (Reply::text("command"), Reply::Array(command.into_iter().map(Reply::Bulk).collect())),
            (Reply::text("duration_ms"), Reply::Int(started.elapsed().as_millis() as i64)),
        ]),
    };
    let (libraries, functions) = server
        .libraries
        .read()
        .map(|l| (l.libs.len(), l.libs.values().map(|lib| lib.functions.len()).sum::<usize>()))
        .unwrap_or_default();
    let counts = Reply::Map(vec![
        (Reply::text("libraries_count"), Reply::Int(libraries as i64)),
        (Reply::text("functions_count"), Reply::Int(functions as i64)),
    ]);
    Ok(Reply::Map(vec![
        (Reply::text("running_script"), running),
        (Reply::text("engines"), Reply::Map(vec![(Reply::text("LUA"), counts)])),
    ]))
}

/// While a script is busy, only the KILL and STATS subcommands run.
fn refuse_while_busy(server: &crate::server::shared::Shared, sub: &str) -> Result<(), CmdError> {
    if server.script_busy.load(Ordering::Relaxed) && !matches!(sub, "KILL" | "STATS") {
        return Err(server.busy_error());
    }
    Ok(())
}

/// SCRIPT KILL and FUNCTION KILL: stops the running script (or function)
/// if it has not written.
fn kill(server: &crate::server::shared::Shared, by_script_kill: bool) -> CmdResult {
    if server.scripts_running.load(Ordering::Relaxed) == 0 {
        return Err(CmdError::Raw("NOTBUSY No scripts in execution right now.".into()));
    }
    // SCRIPT KILL stops EVAL scripts, FUNCTION KILL functions.
    if by_script_kill == server.function_running() {
        return Err(server.busy_error());
    }
    if server.script_wrote.load(Ordering::Relaxed) {
        return Err(CmdError::Raw("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into()));
    }
    server.script_kill.store(true, Ordering::Relaxed);
    Ok(Reply::Ok)
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

fn script<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let sub = args.keyword(1);
        let n = args.len();
        let server = &client.shard.server;
        refuse_while_busy(server, &sub)?;
        match sub.as_str() {
            "HELP" if n == 2 => Ok(Reply::help(SCRIPT_HELP)),
            "LOAD" if n == 3 => {
                let body = args.get(2);
                shebang(body)?;
                // Compile here first so a broken script is refused at once.
                Engine::of(&client.shard)?.compile(&sha1_hex(body), body)?;
                Ok(Reply::text(cache(client, body).0))
            }
            "EXISTS" if n >= 3 => Ok(Reply::Array(
                (2..n)
                    .map(|i| {
                        let sha = String::from_utf8_lossy(args.get(i)).to_ascii_lowercase();
                        Reply::Int(cached(client, &sha).is_some() as i64)
                    })
                    .collect(),
            )),
            "FLUSH" if n == 2 || (n == 3 && (args.is(2, "ASYNC") || args.is(2, "SYNC"))) => {
                if let Ok(mut scripts) = server.scripts.write() {
                    scripts.clear();
                }
                // Every interpreter starts afresh (Redis resets its Lua VM),
                // on the next script; functions load into it again.
                client.shard.broadcast(|sh| drop(sh.scripts.borrow_mut().take())).await;
                Ok(Reply::Ok)
            }
            "FLUSH" => Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option")),
            "KILL" if n == 2 => kill(server, true),
            "HELP" | "LOAD" | "EXISTS" | "KILL" => Err(CmdError::arity(&format!("script|{sub}"))),
            _ => Err(CmdError::UnknownSubcommand { cmd: "SCRIPT".into(), sub: args.str(1) }),
        }
    })
}

pub(super) const TABLE: &[Spec] = &[
    Spec::new("eval", -3, SCRIPT | NOSCRIPT | STALE | MAY_REPLICATE, Keys::Numkeys(2), Handler::Async(eval_cmd))
        .with_flags_of(eval_flags),
    Spec::new("evalsha", -3, SCRIPT | NOSCRIPT | STALE | MAY_REPLICATE, Keys::Numkeys(2), Handler::Async(evalsha))
        .with_flags_of(eval_flags),
    Spec::new("eval_ro", -3, SCRIPT | NOSCRIPT | STALE | READONLY, Keys::Numkeys(2), Handler::Async(eval_ro)),
    Spec::new("evalsha_ro", -3, SCRIPT | NOSCRIPT | STALE | READONLY, Keys::Numkeys(2), Handler::Async(evalsha_ro)),
    Spec::new("script", -2, CONTAINER | NOSCRIPT | STALE | ALLOW_BUSY, Keys::None, Handler::Async(script))
        .with_subcommands(&["script|exists", "script|flush", "script|help", "script|kill", "script|load"]),
    Spec::new("fcall", -3, SCRIPT | NOSCRIPT | STALE | MAY_REPLICATE, Keys::Numkeys(2), Handler::Async(fcall_cmd))
        .with_flags_of(fcall_flags),
    Spec::new("fcall_ro", -3, SCRIPT | NOSCRIPT | STALE | READONLY, Keys::Numkeys(2), Handler::Async(fcall_ro)),
    Spec::new("function", -2, FUNCTION_FLAGS, Keys::None, Handler::Conn(function))
        .with_flags_of(function_flags)
        .with_subcommands(&[
            "function|delete",
            "function|dump",
            "function|flush",
            "function|help",
            "function|kill",
            "function|list",
            "function|load",
            "function|restore",
            "function|stats",
        ]),
];
