//! Handshakes, verification and data over an in-memory client/server pair.

use std::sync::Arc;

use super::{
    Pair, Recording, RejectAll, ALERT_BAD_CERTIFICATE, ALERT_CERTIFICATE_REQUIRED,
    ALERT_NO_APPLICATION_PROTOCOL, CRYPTO_ERROR_BASE,
};
use crate::tls::context::base_builder;
use crate::tls::quic_config::apply;
use crate::tls::{
    peer_public_key, quiche_config, AcceptAnyCertificate, PeerVerifier, QuicSettings, TlsError,
    TlsMaterial, ALPN,
};

fn material(name: &str) -> TlsMaterial {
    TlsMaterial::generate_ephemeral(name).expect("ephemeral material")
}

fn config(material: &TlsMaterial, verifier: Arc<dyn PeerVerifier>) -> quiche::Config {
    quiche_config(material, &QuicSettings::default(), verifier).expect("quiche config")
}

/// An established pair of nodes that accept each other.
fn established() -> (Pair, TlsMaterial, TlsMaterial) {
    let (client_material, server_material) = (material("client"), material("server"));
    let mut client_config = config(&client_material, Arc::new(AcceptAnyCertificate));
    let mut server_config = config(&server_material, Arc::new(AcceptAnyCertificate));
    let mut pair = Pair::new(&mut client_config, &mut server_config, Some("shoal"));
    pair.exchange();
    assert!(pair.client.is_established() && pair.server.is_established());
    (pair, client_material, server_material)
}

#[test]
fn handshake_authenticates_both_sides_with_ed25519() {
    let (client_material, server_material) = (material("client-node"), material("server-node"));
    let client_verifier = Arc::new(Recording::default());
    let server_verifier = Arc::new(Recording::default());
    let mut client_config = config(&client_material, client_verifier.clone());
    let mut server_config = config(&server_material, server_verifier.clone());
    // The SNI ("shoal") matches neither certificate's CN: names are not checked.
    let mut pair = Pair::new(&mut client_config, &mut server_config, Some("shoal"));
    pair.exchange();

    assert!(pair.client.is_established(), "client: {:?}", pair.client.local_error());
    assert!(pair.server.is_established(), "server: {:?}", pair.server.local_error());
    let server_cert = pair.client.peer_cert().expect("the server presented a certificate");
    let client_cert = pair.server.peer_cert().expect("the client presented a certificate");
    assert_eq!(peer_public_key(server_cert).unwrap(), server_material.public_key());
    assert_eq!(peer_public_key(client_cert).unwrap(), client_material.public_key());
    assert_eq!(server_cert, server_material.certificate_der());
    // Each verifier ran exactly once, on the other side's key.
    assert_eq!(client_verifier.seen(), vec![server_material.public_key()]);
    assert_eq!(server_verifier.seen(), vec![client_material.public_key()]);
    assert_eq!(pair.client.application_proto(), ALPN);
    assert_eq!(pair.server.application_proto(), ALPN);
    // No session ticket: resumption, which would skip the verifier, is impossible.
    assert!(pair.client.session().is_none());
}

#[test]
fn handshake_without_server_name_works() {
    let (a, b) = (material("a"), material("b"));
    let mut client_config = config(&a, Arc::new(AcceptAnyCertificate));
    let mut server_config = config(&b, Arc::new(AcceptAnyCertificate));
    let mut pair = Pair::new(&mut client_config, &mut server_config, None);
    pair.exchange();
    assert!(pair.client.is_established() && pair.server.is_established());
}

/// A client that rejects the server fails the handshake itself. Also the regression test for
/// `quiche::Config::verify_peer(false)` on our config, which sets the verify mode to NONE: the
/// verifier then never runs and this handshake succeeds (measured).
#[test]
fn client_verifier_rejection_fails_the_handshake() {
    let (a, b) = (material("client"), material("server"));
    let mut client_config = config(&a, Arc::new(RejectAll));
    let mut server_config = config(&b, Arc::new(AcceptAnyCertificate));
    let mut pair = Pair::new(&mut client_config, &mut server_config, Some("shoal"));
    pair.exchange();

    let code = CRYPTO_ERROR_BASE + ALERT_BAD_CERTIFICATE;
    let local = pair.client.local_error().expect("the client closed the connection");
    assert!(!local.is_app);
    assert_eq!(local.error_code, code, "client closes with bad_certificate");
    let peer = pair.server.peer_error().expect("the server saw the close");
    assert_eq!(peer.error_code, code);
    assert!(!pair.client.is_established() && !pair.server.is_established());
    assert!(pair.server.is_draining() || pair.server.is_closed());
}

/// The same from the server's side: the client may already count itself established (it sends
/// its certificate with its Finished), and must then see the server's close.
#[test]
fn server_verifier_rejection_fails_the_handshake() {
    let (a, b) = (material("client"), material("server"));
    let mut client_config = config(&a, Arc::new(AcceptAnyCertificate));
    let mut server_config = config(&b, Arc::new(RejectAll));
    let mut pair = Pair::new(&mut client_config, &mut server_config, Some("shoal"));
    pair.exchange();

    let code = CRYPTO_ERROR_BASE + ALERT_BAD_CERTIFICATE;
    let local = pair.server.local_error().expect("the server closed the connection");
    assert!(!local.is_app);
    assert_eq!(local.error_code, code, "server closes with bad_certificate");
    assert!(!pair.server.is_established());
    let peer = pair.client.peer_error().expect("the client saw the close");
    assert_eq!(peer.error_code, code);
    assert!(pair.client.is_draining() || pair.client.is_closed());
}

/// A client context without a certificate (only a test can build one): the server requires one.
/// Also the regression test for `quiche::Config::verify_peer(true)` on our config, which keeps
/// the callback but drops `FAIL_IF_NO_PEER_CERT`: the server then accepts this anonymous client
/// (measured).
#[test]
fn server_refuses_a_client_without_certificate() {
    let server_material = material("server");
    let mut client_config = quiche::Config::with_boring_ssl_ctx_builder(
        quiche::PROTOCOL_VERSION,
        base_builder(Arc::new(AcceptAnyCertificate)).expect("context"),
    )
    .expect("config");
    apply(&mut client_config, &QuicSettings::default()).expect("settings");
    let mut server_config = config(&server_material, Arc::new(AcceptAnyCertificate));
    let mut pair = Pair::new(&mut client_config, &mut server_config, Some("shoal"));
    pair.exchange();

    let code = CRYPTO_ERROR_BASE + ALERT_CERTIFICATE_REQUIRED;
    let local = pair.server.local_error().expect("the server closed the connection");
    assert_eq!(local.error_code, code, "server closes with certificate_required");
    assert!(!pair.server.is_established());
    assert_eq!(pair.client.peer_error().expect("the client saw the close").error_code, code);
}

#[test]
fn a_peer_with_another_alpn_is_refused() {
    let (a, b) = (material("client"), material("server"));
    let mut client_config = config(&a, Arc::new(AcceptAnyCertificate));
    client_config.set_application_protos(&[b"shoal/0"]).expect("ALPN");
    let mut server_config = config(&b, Arc::new(AcceptAnyCertificate));
    let mut pair = Pair::new(&mut client_config, &mut server_config, Some("shoal"));
    pair.exchange();

    let code = CRYPTO_ERROR_BASE + ALERT_NO_APPLICATION_PROTOCOL;
    let local = pair.server.local_error().expect("the server closed the connection");
    assert_eq!(local.error_code, code, "server closes with no_application_protocol");
    assert!(!pair.client.is_established() && !pair.server.is_established());
}

#[test]
fn client_first_flight_is_one_datagram() {
    let (a, b) = (material("client"), material("server"));
    let mut client_config = config(&a, Arc::new(AcceptAnyCertificate));
    let mut server_config = config(&b, Arc::new(AcceptAnyCertificate));
    let mut pair = Pair::new(&mut client_config, &mut server_config, Some("shoal"));
    let mut buf = [0u8; 65_535];
    let mut datagrams = Vec::new();
    loop {
        match pair.client.send(&mut buf) {
            Ok((len, _)) => datagrams.push(len),
            Err(quiche::Error::Done) => break,
            Err(e) => panic!("send: {e:?}"),
        }
    }
    // X25519 only; the default groups (X25519MLKEM768 first) make it two.
    assert_eq!(datagrams.len(), 1, "first flight: {datagrams:?} bytes");
    assert!(datagrams[0] >= quiche::MIN_CLIENT_INITIAL_LEN);
}

#[test]
fn stream_round_trip() {
    let (mut pair, _, _) = established();
    // Larger than the initial congestion window, well within the stream and connection windows.
    let request: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let mut written = 0;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..1_000 {
        if written < request.len() {
            written += pair.client.stream_send(0, &request[written..], true).unwrap_or(0);
        }
        pair.exchange();
        let mut fin = false;
        while let Ok((len, done)) = pair.server.stream_recv(0, &mut buf) {
            received.extend_from_slice(&buf[..len]);
            fin = done;
        }
        if fin {
            break;
        }
    }
    assert!(received == request, "received {} of {} bytes", received.len(), request.len());

    pair.server.stream_send(0, b"pong", true).expect("server replies");
    pair.exchange();
    let (len, fin) = pair.client.stream_recv(0, &mut buf).expect("reply arrived");
    assert_eq!((&buf[..len], fin), (&b"pong"[..], true));
}

/// Unidirectional streams have their own count and window parameters (both 0 by default).
#[test]
fn unidirectional_stream_arrives() {
    let (mut pair, _, _) = established();
    // Stream 2: the client's first unidirectional stream (RFC 9000 §2.1).
    pair.client.stream_send(2, b"one way", true).expect("the server allows uni streams");
    pair.exchange();
    let mut buf = [0u8; 64];
    let (len, fin) = pair.server.stream_recv(2, &mut buf).expect("uni stream data arrived");
    assert_eq!((&buf[..len], fin), (&b"one way"[..], true));
}

#[test]
fn datagram_round_trip() {
    let (mut pair, _, _) = established();
    pair.client.dgram_send(b"ping").expect("DATAGRAM enabled on both sides");
    pair.exchange();
    let mut buf = [0u8; 1500];
    let len = pair.server.dgram_recv(&mut buf).expect("datagram arrived");
    assert_eq!(&buf[..len], b"ping");

    pair.server.dgram_send(b"pong").expect("DATAGRAM enabled on both sides");
    pair.exchange();
    let len = pair.client.dgram_recv(&mut buf).expect("datagram arrived");
    assert_eq!(&buf[..len], b"pong");
}

#[test]
fn config_refuses_invalid_settings() {
    let settings = QuicSettings { idle_timeout_ms: 0, ..QuicSettings::default() };
    let Err(err) = quiche_config(&material("a"), &settings, Arc::new(AcceptAnyCertificate)) else {
        panic!("a zero idle timeout must be refused");
    };
    assert!(matches!(err, TlsError::Settings(ref e) if e.key == "idle_timeout_ms"), "{err}");
}

#[test]
fn peer_public_key_rejects_garbage() {
    let err = peer_public_key(b"not a certificate").expect_err("garbage");
    assert!(matches!(err, TlsError::PeerCertificate { .. }), "{err}");
}

#[test]
fn peer_public_key_rejects_a_non_ed25519_certificate() {
    use boring::asn1::Asn1Time;
    use boring::ec::{EcGroup, EcKey};
    use boring::hash::MessageDigest;
    use boring::nid::Nid;
    use boring::pkey::PKey;
    use boring::x509::X509;

    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut builder = X509::builder().unwrap();
    // BoringSSL will not sign a certificate without a validity period.
    builder.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    let der = builder.build().to_der().unwrap();
    let err = peer_public_key(&der).expect_err("P-256 is not Ed25519");
    assert!(
        matches!(err, TlsError::PeerCertificate { reason } if reason.contains("not Ed25519")),
        "{err}"
    );
}
