//! Thread scheduling of a running server: the UDP workers keep normal priority with a short
//! time slice, every other thread of ours lowers itself (`[scheduling]`), read from
//! `/proc` of the real `tollgate serve` process after it answered a login.

use std::collections::BTreeMap;

use tollgate_tests::{hotp_code, login, Node};

/// Each thread's name with its nice value and (where the kernel shows it) its slice in ns.
fn threads(pid: u32) -> Vec<(String, i32, Option<u64>)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the command name: state is field 3, nice is field 19.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let nice: i32 = rest.split(' ').nth(16).unwrap().parse().unwrap();
        let slice = std::fs::read_to_string(path.join("sched"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("se.slice"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.trim().parse().ok());
        out.push((comm.trim_end().to_owned(), nice, slice));
    }
    out
}

/// A server with `extra` configuration that has answered one login: the Argon2 check ran on
/// the runtime's blocking pool and the token's counter went through the store thread, so
/// every kind of thread has started.
fn node_after_a_login(extra: &str) -> Node {
    let mut node = Node::new(extra);
    node.add_client("nas1", "append", true);
    node.add_hotp_user("alice", "Secret123");
    node.start();
    let r = login(
        node.radius(),
        "alice",
        &format!("Secret123{}", hotp_code(0)),
    );
    assert!(r.is("Access-Accept"), "{}\n{}", r.output, node.log());
    node
}

fn kernel_shows_slices(pid: u32) -> bool {
    threads(pid).iter().any(|(_, _, slice)| slice.is_some())
}

#[test]
fn udp_workers_keep_priority_and_everything_else_yields() {
    // Node's configuration ends inside its [radius] table, which this line extends.
    let node = node_after_a_login("workers = 2\n");

    let all = threads(node.pid());
    let by_name: BTreeMap<&str, Vec<(i32, Option<u64>)>> =
        all.iter()
            .fold(BTreeMap::new(), |mut m, (name, nice, slice)| {
                m.entry(name.as_str()).or_default().push((*nice, *slice));
                m
            });
    let workers = &by_name["tollgate-udp-0"];
    assert_eq!(workers, &by_name["tollgate-udp-1"]);
    for (nice, slice) in workers {
        assert_eq!(*nice, 0, "a UDP worker was lowered: {all:?}");
        if kernel_shows_slices(node.pid()) {
            assert_eq!(*slice, Some(100_000), "worker slice: {all:?}");
        }
    }
    for (nice, _) in &by_name["tollgate-store"] {
        assert_eq!(*nice, 10, "store thread: {all:?}");
    }
    // The runtime's threads are all named "tollgate", like the main thread, which stays as
    // it was (it only waits for the shutdown signal): all but one are lowered.
    let runtime = &by_name["tollgate"];
    let lowered = runtime.iter().filter(|(nice, _)| *nice == 10).count();
    assert!(runtime.len() >= 2, "{all:?}");
    assert_eq!(lowered, runtime.len() - 1, "runtime threads: {all:?}");
    // The log writer lowers itself with its first line (the node logs at info).
    for (nice, _) in &by_name["tollgate-log"] {
        assert_eq!(*nice, 10, "log thread: {all:?}");
    }
}

#[test]
fn scheduling_can_be_left_to_the_kernel() {
    let node = node_after_a_login("[scheduling]\nbackground_nice = 0\nudp_slice_us = 0\n");
    for (name, nice, slice) in threads(node.pid()) {
        assert_eq!(nice, 0, "{name} was lowered");
        assert_ne!(slice, Some(100_000), "{name} got a short slice");
    }
}
