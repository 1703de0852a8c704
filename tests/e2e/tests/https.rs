//! HTTPS is verified: a receiver with a certificate from a locally generated
//! CA is reached when webhook.ca_file names that CA, and refused otherwise.

use std::time::Duration;
use webhook_emitter_e2e::{Cluster, Receiver, TestCa};

#[test]
fn https_receiver_trusted_only_through_the_configured_ca() {
    let ca = TestCa::new("webhook_emitter test CA");
    let (leaf, leaf_key) = ca.issue(&["127.0.0.1", "localhost"], false);

    let ca_file = std::env::temp_dir().join(format!("webhook_e2e_ca_{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let cluster = Cluster::start(&format!("webhook.ca_file = '{}'", ca_file.display()));
    let receiver = Receiver::start_https(leaf.as_bytes(), leaf_key.as_bytes());
    let url = format!("https://127.0.0.1:{}/tls", receiver.port);
    let mut c = cluster.client();
    let id: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('tls', $1, '{group.created}')",
            &[&url],
        )
        .unwrap()
        .get(0);
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('over TLS')")
        .unwrap();
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].json()["payload"]["group_name"], "over TLS");

    // Without the extra CA the same receiver is refused.
    c.batch_execute("ALTER SYSTEM SET webhook.ca_file = ''")
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut fresh = cluster.client();
    let row = fresh
        .query_one(
            "SELECT status_code, error FROM webhook.send_test($1)",
            &[&id],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), None);
    let err: String = row.get(1);
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert_eq!(receiver.count(), 1);
    let _ = std::fs::remove_file(&ca_file);
}
