//! Tests of the TLS module. Handshakes run in memory: two `quiche::Connection`s and a loop that
//! carries each one's datagrams to the other. No sockets, no clock.

mod material;
