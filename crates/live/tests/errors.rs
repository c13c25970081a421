//! Error paths and their one-line messages.

#![cfg(target_os = "linux")]

use std::process::Command;

use live::{LiveCapture, LiveConfig, LiveError};

#[test]
fn nonexistent_interface_says_how_to_list_them() {
    let err = LiveCapture::open(&LiveConfig::new("eth9nope")).unwrap_err();
    assert!(matches!(err, LiveError::NoSuchInterface(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no such interface 'eth9nope' (list them with `ip link`)"
    );
    // Names the kernel could never have are the same error.
    let err = LiveCapture::open(&LiveConfig::new("a-name-longer-than-ifnamsiz")).unwrap_err();
    assert!(matches!(err, LiveError::NoSuchInterface(_)), "{err:?}");
    let err = LiveCapture::open(&LiveConfig::new("")).unwrap_err();
    assert!(matches!(err, LiveError::NoSuchInterface(_)), "{err:?}");
}

#[test]
fn bad_ring_settings_name_the_setting() {
    let mut cfg = LiveConfig::new("lo");
    cfg.block_size = 1000;
    let err = LiveCapture::open(&cfg).unwrap_err();
    assert!(err.to_string().contains("block_size"), "{err}");

    let mut cfg = LiveConfig::new("lo");
    cfg.block_size = 64 * 1024; // too small for snaplen 262144
    let err = LiveCapture::open(&cfg).unwrap_err();
    assert!(err.to_string().contains("block_size") && err.to_string().contains("snaplen"));

    let mut cfg = LiveConfig::new("lo");
    cfg.block_count = 0;
    let err = LiveCapture::open(&cfg).unwrap_err();
    assert!(err.to_string().contains("block_count"), "{err}");
}

#[test]
fn invalid_filter_is_rejected_with_its_length() {
    let mut cfg = LiveConfig::new("lo");
    // A jump past the end: the kernel's checker refuses it.
    cfg.filter = Some(vec![live::BpfInsn::new(0x05, 0, 0, 10)]);
    match LiveCapture::open(&cfg) {
        Err(LiveError::PermissionDenied(_)) => eprintln!("skipped: needs CAP_NET_RAW"),
        Err(e @ LiveError::Filter { .. }) => {
            assert!(e.to_string().contains("1 instructions"), "{e}")
        }
        other => panic!("expected a filter error, got {other:?}"),
    }
}

const CHILD: &str = "LIVE_TEST_NO_NET_RAW_CHILD";

/// Runs in a child stripped of CAP_NET_RAW (see the next test).
#[test]
fn child_without_net_raw() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let err = LiveCapture::open(&LiveConfig::new("lo")).unwrap_err();
    assert!(matches!(err, LiveError::PermissionDenied(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "capturing on 'lo' needs root or CAP_NET_RAW: run as root or \
         `sudo setcap cap_net_raw+ep /path/to/trafficscope`"
    );
    println!("CHILD-CHECKED");
}

#[test]
fn without_cap_net_raw_the_error_says_how_to_grant_it() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    // `capsh --drop` removes CAP_NET_RAW from the bounding set, so the child
    // (even as root) cannot open a packet socket.
    let exe = std::env::current_exe().unwrap();
    let cmd = format!(
        "exec '{}' --exact child_without_net_raw --nocapture --test-threads=1",
        exe.display()
    );
    let out = match Command::new("capsh")
        .args(["--drop=cap_net_raw", "--", "-c", &cmd])
        .env(CHILD, "1")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped: capsh not available ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && stdout.is_empty() {
        eprintln!(
            "skipped: capsh could not drop CAP_NET_RAW: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    assert!(out.status.success(), "child failed:\n{stdout}");
    assert!(
        stdout.contains("CHILD-CHECKED"),
        "child did not run:\n{stdout}"
    );
}
