//! The one rewrite the parity run makes to what a container sees.
//!
//! In a container, `0.0.0.0` (listen everywhere) and `127.0.0.1` /
//! `localhost` (myself) are private to that container. Here every service
//! shares the machine's loopback and gets an address of its own, so those
//! three hosts become the service's address wherever they stand as a host:
//! in its environment, command, healthcheck and mounted text files. Nothing
//! else is changed, and every change is reported.

/// The hosts that mean "this container".
const SELF_HOSTS: [&str; 3] = ["0.0.0.0", "127.0.0.1", "localhost"];

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'
}

/// `text` with every self host replaced by `addr`, and how many were replaced.
pub fn localize(text: &str, addr: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    'outer: while i < text.len() {
        let before_ok = i == 0 || !text[..i].chars().next_back().is_some_and(is_host_char);
        if before_ok {
            for h in SELF_HOSTS {
                if bytes[i..].starts_with(h.as_bytes()) {
                    let end = i + h.len();
                    let after_ok = !text[end..].chars().next().is_some_and(is_host_char);
                    if after_ok {
                        out.push_str(addr);
                        count += 1;
                        i = end;
                        continue 'outer;
                    }
                }
            }
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::localize;

    #[test]
    fn only_self_hosts_standing_as_hosts_change() {
        let a = "127.0.9.4";
        let cases = [
            ("listen 0.0.0.0:8080", "listen 127.0.9.4:8080", 1),
            (
                "http://127.0.0.1:9095/alerts",
                "http://127.0.9.4:9095/alerts",
                1,
            ),
            (
                "targets: [\"localhost:9090\"]",
                "targets: [\"127.0.9.4:9090\"]",
                1,
            ),
            ("(\"0.0.0.0\", port)", "(\"127.0.9.4\", port)", 1),
            // Docker's DNS, another host, and names that merely contain one.
            (
                "nameserver dns 127.0.0.11:53",
                "nameserver dns 127.0.0.11:53",
                0,
            ),
            ("10.127.0.0.1", "10.127.0.0.1", 0),
            (
                "mylocalhost:1 localhost.example",
                "mylocalhost:1 localhost.example",
                0,
            ),
            ("http://tempo:4318", "http://tempo:4318", 0),
        ];
        for (input, want, n) in cases {
            assert_eq!(localize(input, a), (want.to_string(), n), "{input}");
        }
    }
}
