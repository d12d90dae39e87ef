//! `QuicSettings::validate`: every bound, every error naming its key.

use proptest::prelude::*;

use crate::tls::QuicSettings;

fn rejected_key(settings: &QuicSettings) -> &'static str {
    let err = settings.validate().expect_err("invalid settings");
    assert_eq!(err.section, "transport");
    assert!(!err.fix.is_empty());
    assert!(err.to_string().contains(err.key), "{err}");
    err.key
}

#[test]
fn defaults_are_valid() {
    QuicSettings::default().validate().expect("defaults");
}

#[test]
fn zero_values_are_rejected_by_name() {
    let d = QuicSettings::default;
    let cases = [
        ("idle_timeout_ms", QuicSettings { idle_timeout_ms: 0, ..d() }),
        ("initial_max_data_bytes", QuicSettings { initial_max_data_bytes: 0, ..d() }),
        ("initial_max_stream_data_bytes", QuicSettings { initial_max_stream_data_bytes: 0, ..d() }),
        ("initial_max_streams_bidi", QuicSettings { initial_max_streams_bidi: 0, ..d() }),
        ("initial_max_streams_uni", QuicSettings { initial_max_streams_uni: 0, ..d() }),
        ("dgram_recv_queue_len", QuicSettings { dgram_recv_queue_len: 0, ..d() }),
        ("dgram_send_queue_len", QuicSettings { dgram_send_queue_len: 0, ..d() }),
        ("max_send_udp_payload_bytes", QuicSettings { max_send_udp_payload_bytes: 0, ..d() }),
        ("max_recv_udp_payload_bytes", QuicSettings { max_recv_udp_payload_bytes: 0, ..d() }),
        ("active_connection_id_limit", QuicSettings { active_connection_id_limit: 0, ..d() }),
        ("max_connection_window_bytes", QuicSettings { max_connection_window_bytes: 0, ..d() }),
        ("max_stream_window_bytes", QuicSettings { max_stream_window_bytes: 0, ..d() }),
        ("initial_rtt_ms", QuicSettings { initial_rtt_ms: 0, ..d() }),
    ];
    for (key, settings) in cases {
        assert_eq!(rejected_key(&settings), key);
    }
}

#[test]
fn upper_bounds_are_rejected_by_name() {
    let d = QuicSettings::default;
    let cases = [
        ("initial_max_streams_bidi", QuicSettings { initial_max_streams_bidi: 65_537, ..d() }),
        ("initial_max_streams_uni", QuicSettings { initial_max_streams_uni: 65_537, ..d() }),
        ("dgram_recv_queue_len", QuicSettings { dgram_recv_queue_len: 65_537, ..d() }),
        ("dgram_send_queue_len", QuicSettings { dgram_send_queue_len: 65_537, ..d() }),
        ("active_connection_id_limit", QuicSettings { active_connection_id_limit: 17, ..d() }),
        ("initial_rtt_ms", QuicSettings { initial_rtt_ms: 10_001, ..d() }),
    ];
    for (key, settings) in cases {
        assert_eq!(rejected_key(&settings), key);
    }
}

#[test]
fn cross_field_bounds() {
    let d = QuicSettings::default;
    let data_over_window =
        QuicSettings { initial_max_data_bytes: d().max_connection_window_bytes + 1, ..d() };
    assert_eq!(rejected_key(&data_over_window), "initial_max_data_bytes");
    let stream_over_window =
        QuicSettings { initial_max_stream_data_bytes: d().max_stream_window_bytes + 1, ..d() };
    assert_eq!(rejected_key(&stream_over_window), "initial_max_stream_data_bytes");
    assert_eq!(
        rejected_key(&QuicSettings { active_connection_id_limit: 1, ..d() }),
        "active_connection_id_limit"
    );
}

proptest! {
    #[test]
    fn udp_payload_sizes_outside_1200_to_65527_are_rejected(
        bytes in prop_oneof![0usize..1200, 65_528usize..=usize::MAX],
        send in any::<bool>(),
    ) {
        let settings = if send {
            QuicSettings { max_send_udp_payload_bytes: bytes, ..QuicSettings::default() }
        } else {
            QuicSettings { max_recv_udp_payload_bytes: bytes, ..QuicSettings::default() }
        };
        let key = if send { "max_send_udp_payload_bytes" } else { "max_recv_udp_payload_bytes" };
        prop_assert_eq!(rejected_key(&settings), key);
    }

    #[test]
    fn udp_payload_sizes_inside_the_range_are_accepted(
        send in 1200usize..=65_527,
        recv in 1200usize..=65_527,
    ) {
        let settings = QuicSettings {
            max_send_udp_payload_bytes: send,
            max_recv_udp_payload_bytes: recv,
            ..QuicSettings::default()
        };
        prop_assert!(settings.validate().is_ok());
    }

    #[test]
    fn idle_timeouts_beyond_an_hour_are_rejected(ms in 3_600_001u64..) {
        let settings = QuicSettings { idle_timeout_ms: ms, ..QuicSettings::default() };
        prop_assert_eq!(rejected_key(&settings), "idle_timeout_ms");
    }

    #[test]
    fn windows_beyond_1_gib_are_rejected(bytes in (1u64 << 30) + 1.., stream in any::<bool>()) {
        let (settings, key) = if stream {
            (QuicSettings { max_stream_window_bytes: bytes, ..QuicSettings::default() },
             "max_stream_window_bytes")
        } else {
            (QuicSettings { max_connection_window_bytes: bytes, ..QuicSettings::default() },
             "max_connection_window_bytes")
        };
        prop_assert_eq!(rejected_key(&settings), key);
    }
}
