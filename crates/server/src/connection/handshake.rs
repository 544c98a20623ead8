//! CONNECT/STOMP: version negotiation, heart-beat agreement and authentication (open mode accepts
//! any credentials and any `host`, since clients put their DNS name there).

use std::time::Duration;

use stampede_proto::{ClientCommand, Command, Frame, Request, Version};

use super::Heartbeat;
use crate::ConnectionSettings;

/// Validates the first frame; returns the CONNECTED frame (without `session`), the version and the
/// agreed heart-beats, or the reason to refuse.
pub fn accept(
    frame: Frame,
    settings: &ConnectionSettings,
) -> Result<(Frame, Version, Heartbeat), String> {
    if !matches!(frame.command, Command::Connect | Command::Stomp) {
        return Err(format!(
            "expected CONNECT or STOMP as the first frame, got {}",
            frame.command
        ));
    }
    let req = Request::from_frame(frame, Version::V1_0).map_err(|e| e.to_string())?;
    let ClientCommand::Connect(connect) = req.command else {
        return Err("expected CONNECT or STOMP as the first frame".to_owned());
    };
    let offer = settings.heartbeat.as_millis() as u64;
    let (cx, cy) = connect.heart_beat;
    // Spec 1.2 "Heart-beating": each direction uses the larger of what one side can do and the
    // other wants, and is off when either side says 0.
    let agree = |ours: u64, theirs: u64| (ours > 0 && theirs > 0).then(|| ours.max(theirs));
    let send = agree(offer, cy);
    let receive = agree(offer, cx);
    let ms = |d: Option<u64>| d.unwrap_or(0).to_string();
    let connected = Frame::new(Command::Connected)
        .header("version", connect.version.as_str())
        .header("server", concat!("Stampede/", env!("CARGO_PKG_VERSION")))
        .header("heart-beat", format!("{},{}", ms(send), ms(receive)));
    let heartbeat = Heartbeat {
        send: send.map(Duration::from_millis),
        receive: receive.map(Duration::from_millis),
    };
    Ok((connected, connect.version, heartbeat))
}
