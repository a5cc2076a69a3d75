//! The box's addresses on its networks, and the URLs people use to reach it (the start-up
//! banner, the printers' test slip).

/// The box's own IPv4 addresses on its networks (not loopback or link-local), for the banner.
pub fn lan_addresses() -> Vec<std::net::IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<std::net::IpAddr> = addrs
        .filter_map(|a| {
            a.address?
                .as_sockaddr_in()
                .map(nix::sys::socket::SockaddrIn::ip)
        })
        .filter(|ip| !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified())
        .map(std::net::IpAddr::V4)
        .collect();
    out.dedup();
    out
}

/// `http://HOST[:PORT]` for each address a guest or the staff can use: the LAN addresses when
/// the daemon listens on all of them (the first is the one to print on QR codes), else the
/// listen address; 127.0.0.1 when the box has no network. Port 80 is left out of the URL.
pub fn base_urls(
    scheme: &str,
    addr: std::net::SocketAddr,
    lan: &[std::net::IpAddr],
) -> Vec<String> {
    let default_port = if scheme == "https" { 443 } else { 80 };
    let url = |ip: std::net::IpAddr| {
        let host = match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        };
        if addr.port() == default_port {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{}", addr.port())
        }
    };
    if !addr.ip().is_unspecified() {
        return vec![url(addr.ip())];
    }
    if lan.is_empty() {
        return vec![url(std::net::Ipv4Addr::LOCALHOST.into())];
    }
    lan.iter().copied().map(url).collect()
}
