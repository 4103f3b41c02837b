use std::net::{TcpListener, TcpStream};

use super::*;

#[test]
fn names_parse_and_bad_ones_are_usage_errors() {
    assert_eq!(Congestion::parse("auto").unwrap(), Congestion::Auto);
    assert_eq!(Congestion::parse("system").unwrap(), Congestion::System);
    assert_eq!(Congestion::parse("cubic").unwrap(), Congestion::Named("cubic".into()));
    for bad in ["", "BBR", "bbr;", "a/b", "sixteen_letters_"] {
        assert_eq!(Congestion::parse(bad).unwrap_err().code(), "E_USAGE", "{bad:?}");
    }
}

#[test]
fn auto_takes_bbr_where_it_can_and_says_why_where_it_cannot() {
    let ok = |_: &str| Ok(());
    let refused = |_: &str| Err(io::Error::from_raw_os_error(1)); // EPERM: not allowed to this user
    assert_eq!(choose_with(&Congestion::Auto, &ok).unwrap(), Choice { set: Some("bbr".into()), note: None });
    let c = choose_with(&Congestion::Auto, &refused).unwrap();
    assert_eq!(c.set, None);
    assert!(c.note.unwrap().starts_with("bbr cannot be used here"));
    assert_eq!(choose_with(&Congestion::System, &refused).unwrap(), Choice::default());
    assert_eq!(choose_with(&Congestion::Named("cubic".into()), &ok).unwrap().set.as_deref(), Some("cubic"));
    assert_eq!(choose_with(&Congestion::Named("cubic".into()), &refused).unwrap_err().code(), "E_USAGE");
}

/// On the real kernel: reno is built in and allowed to everyone; a name it does not know is
/// refused by `choose`.
#[test]
fn a_socket_runs_the_algorithm_set_on_it() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    set(&s, "reno").unwrap();
    assert_eq!(get(&s).unwrap(), "reno");
    assert!(set(&s, "nosuchcc").is_err());
    assert_eq!(choose(&Congestion::Named("nosuchcc".into())).unwrap_err().code(), "E_USAGE");
    assert_eq!(choose(&Congestion::Named("reno".into())).unwrap().set.as_deref(), Some("reno"));
}

#[test]
fn the_kernel_lists_are_read_under_a_root() {
    let dir = crate::scratch::Scratch::new("congestion-lists");
    std::fs::create_dir_all(dir.join("proc/sys/net/ipv4")).unwrap();
    std::fs::write(dir.join(AVAILABLE), "reno cubic bbr\n").unwrap();
    std::fs::write(dir.join(SYSTEM_DEFAULT), "cubic\n").unwrap();
    assert_eq!(available(&dir), ["reno", "cubic", "bbr"]);
    assert_eq!(system_default(&dir).as_deref(), Some("cubic"));
    assert!(available(&dir.join("none")).is_empty());
}
