//! Loopback ports for servers a test cannot hand a bound listener to: other processes (the
//! proxy when it restarts on its address, nginx, sshd, redis), or a server that must be down
//! first and come up later on an address already configured.
//!
//! A [`PortHold`] is a socket bound to a port the system chose, which does not listen:
//! connections to the port are refused (as to a server that is down), and the system hands
//! the port to nobody else (no bind-release-rebind race with parallel tests). A server that
//! binds with `SO_REUSEADDR` takes the port over while the hold exists: the proxy (tokio),
//! std's listeners, nginx, sshd and redis all do.

use std::net::SocketAddr;

/// A port held by a bound socket that does not listen.
#[derive(Debug)]
pub struct PortHold {
    port: u16,
    _socket: tokio::net::TcpSocket,
}

impl PortHold {
    /// Holds a free port on 127.0.0.1.
    pub fn new() -> Self {
        Self::bind(0)
    }

    /// Holds `port` on 127.0.0.1 again (e.g. while the proxy that had it restarts).
    pub fn again(port: u16) -> Self {
        Self::bind(port)
    }

    fn bind(port: u16) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap_or_else(|e| panic!("cannot hold port {port} on 127.0.0.1: {e}"));
        let port = socket.local_addr().unwrap().port();
        Self {
            port,
            _socket: socket,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Default for PortHold {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_refuses_connections_and_a_server_can_take_it_over() {
        let hold = PortHold::new();
        assert!(std::net::TcpStream::connect(("127.0.0.1", hold.port())).is_err());
        let server = std::net::TcpListener::bind(("127.0.0.1", hold.port())).unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", hold.port())).is_ok());
        drop(server);
        let other = PortHold::new();
        assert_ne!(other.port(), hold.port());
    }
}
