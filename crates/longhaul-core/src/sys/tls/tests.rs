use super::*;

#[test]
fn fingerprints_parse_in_every_printed_form() {
    let fp = fingerprint_of(b"certificate");
    let bytes = parse_fingerprint(&fp).unwrap();
    assert_eq!(format!("sha256:{}", crate::util::hex(&bytes)), fp);
    assert_eq!(parse_fingerprint(fp.trim_start_matches("sha256:")).unwrap(), bytes);
    let colons: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(parse_fingerprint(&colons.join(":")).unwrap(), bytes);
    for bad in ["", "sha256:", "sha256:12", &fp[..fp.len() - 1], &format!("{}zz", &fp[..fp.len() - 2])] {
        assert_eq!(parse_fingerprint(bad).unwrap_err().code(), "E_USAGE", "{bad:?}");
    }
}

#[test]
fn host_names_come_from_addresses() {
    assert_eq!(host_of("127.0.0.1:7878"), "127.0.0.1");
    assert_eq!(host_of("[::1]:7878"), "::1");
    assert_eq!(host_of("node.example:1"), "node.example");
}

#[test]
fn a_client_must_say_how_it_trusts_the_node() {
    assert_eq!(ClientTls::new(None, None).err().unwrap().code(), "E_USAGE");
    let fp = fingerprint_of(b"x");
    assert_eq!(ClientTls::new(Some(&fp), Some(Path::new("/nonexistent"))).err().unwrap().code(), "E_USAGE");
    assert_eq!(ClientTls::new(None, Some(Path::new("/nonexistent/ca.pem"))).err().unwrap().code(), "E_USAGE");
}

#[test]
fn no_frame_a_connection_starts_with_looks_like_tls() {
    use crate::wire::frame::Msg;
    let hello = Msg::Hello { min: 1, max: 1, features: crate::wire::frame::FEATURES, nonce: [7; 16] }.encode();
    let data = Msg::DataHello { token: [9; 16], stream: 3 }.encode();
    assert_ne!(hello[0], HANDSHAKE_RECORD);
    assert_ne!(data[0], HANDSHAKE_RECORD);
}
