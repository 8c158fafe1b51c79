//! End-to-end tests of a cluster: three gateways sharing their bans
//! through a real `redis-server`, started on a free port, and what happens
//! when Redis goes away and comes back.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A `redis-server` of its own on a free port, with nothing persisted;
/// killed on drop.
struct Redis {
    child: Child,
}

impl Redis {
    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/setup)");
        wait_listening(format!("127.0.0.1:{port}").parse().unwrap());
        Redis { child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn node(name: &str, upstream: std::net::SocketAddr, redis: u16) -> GatewayProcess {
    let tail = format!(
        "\n[flood]\n[[flood.sites]]\nname = \"www\"\n\n[cluster]\nnode = \"{name}\"\nredis = \"redis://127.0.0.1:{redis}\"\n"
    );
    GatewayProcess::start(
        &format!("cluster-{name}"),
        &one_site_config(upstream, &tail),
    )
}

/// The address of a node's site, for `status_from`.
fn front(gw: &GatewayProcess) -> String {
    format!("http://{}/", gw.listen)
}

fn ban(gw: &GatewayProcess, address: &str) {
    let out = gw
        .cli()
        .args([
            "ban",
            address,
            "--for",
            "10m",
            "--admin",
            &gw.admin.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_ban_on_one_node_is_refused_by_all_and_survives_a_redis_outage() {
    let up = NamedUpstream::start("app");
    let redis_port = free_port();
    let mut redis = Redis::start_on(redis_port);
    let nodes = [
        node("n1", up.addr, redis_port),
        node("n2", up.addr, redis_port),
        node("n3", up.addr, redis_port),
    ];
    eventually("every node is linked to Redis", || {
        nodes
            .iter()
            .all(|n| n.metrics().contains("rampart_cluster_up{node="))
            && nodes.iter().all(|n| {
                n.metrics()
                    .lines()
                    .any(|l| l.starts_with("rampart_cluster_up") && l.ends_with(" 1"))
            })
    });

    // A ban made through node 1's admin is refused by node 3 within 1 s.
    for n in &nodes {
        assert_eq!(status_from("127.0.0.21", &front(n)), 200);
    }
    ban(&nodes[0], "127.0.0.21");
    let banned_at = Instant::now();
    eventually_within(
        "node 3 refuses the client node 1 banned",
        Duration::from_secs(1),
        || status_from("127.0.0.21", &front(&nodes[2])) == 403,
    );
    let took = banned_at.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(status_from("127.0.0.21", &front(&nodes[1])), 403);
    let listed = nodes[2]
        .cli()
        .args(["bans", "--admin", &nodes[2].admin.to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("127.0.0.21"));

    // An unban is shared the same way.
    let out = nodes[1]
        .cli()
        .args([
            "unban",
            "127.0.0.21",
            "--admin",
            &nodes[1].admin.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    eventually_within(
        "every node lets the client in again",
        Duration::from_secs(2),
        || {
            nodes
                .iter()
                .all(|n| status_from("127.0.0.21", &front(n)) == 200)
        },
    );

    // Redis goes away: every node goes on deciding alone, and no visitor's
    // request fails.
    redis.stop();
    eventually("every node notices Redis is gone", || {
        nodes.iter().all(|n| {
            n.metrics()
                .lines()
                .any(|l| l.starts_with("rampart_cluster_up") && l.ends_with(" 0"))
        })
    });
    for _ in 0..5 {
        for n in &nodes {
            assert_eq!(
                status_from("127.0.0.22", &front(n)),
                200,
                "a visitor during the outage"
            );
        }
    }
    ban(&nodes[1], "127.0.0.23");
    assert_eq!(
        status_from("127.0.0.23", &front(&nodes[1])),
        403,
        "node 2 enforces its own ban alone"
    );
    assert_eq!(
        status_from("127.0.0.23", &front(&nodes[0])),
        200,
        "the others cannot know yet"
    );
    assert!(nodes.iter().all(|n| !n.stderr().contains("panicked")));

    // Redis is back: the ban made meanwhile reaches every node.
    let _redis = Redis::start_on(redis_port);
    eventually_within(
        "the ban made during the outage reaches nodes 1 and 3",
        Duration::from_secs(10),
        || {
            status_from("127.0.0.23", &front(&nodes[0])) == 403
                && status_from("127.0.0.23", &front(&nodes[2])) == 403
        },
    );
    // The writer thread logs both (its reconnection can come a second after
    // the subscriber's, which already brought the ban).
    eventually("node 1 logs the outage and the return", || {
        let log = nodes[0].stderr();
        log.contains("unreachable") && log.contains("reachable again")
    });
}

#[test]
fn a_cluster_section_is_checked_with_the_reason() {
    let up = NamedUpstream::start("app");
    for (redis, reason) in [
        ("rediss://127.0.0.1:6379", "not supported yet"),
        ("127.0.0.1:6379", "redis://HOST:PORT"),
    ] {
        let config = one_site_config(
            up.addr,
            &format!("\n[cluster]\nnode = \"n1\"\nredis = \"{redis}\"\n"),
        );
        let (ok, out) = check_config("cluster-check", &config);
        assert!(!ok && out.contains(reason), "{out}");
    }
    let config = one_site_config(
        up.addr,
        "\n[cluster]\nredis = \"redis://127.0.0.1:6379\"\nnodes = 3\n",
    );
    let (ok, out) = check_config("cluster-check-unknown", &config);
    assert!(!ok && out.contains("nodes"), "{out}");
}
