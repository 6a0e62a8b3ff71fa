//! A minimal SSH agent client: how many identities does the agent at `SSH_AUTH_SOCK` hold?
//! (draft-miller-ssh-agent: SSH2_AGENTC_REQUEST_IDENTITIES = 11, answered by
//! SSH2_AGENT_IDENTITIES_ANSWER = 12 with a u32 count.) Only the count is read: the key
//! blobs are not needed to know the agent can authenticate.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
/// Larger answers are not from a sane agent.
const MAX_ANSWER: usize = 256 * 1024;

/// Why the agent could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("SSH agent at {sock}: {what}")]
pub struct AgentError {
    /// The agent's socket (`SSH_AUTH_SOCK`).
    pub sock: String,
    /// What went wrong (one line).
    pub what: String,
}

/// The number of identities the agent listening on `sock` holds.
pub fn count_identities(sock: &Path) -> Result<u32, AgentError> {
    let err = |what: String| AgentError {
        sock: sock.display().to_string(),
        what,
    };
    let mut stream = UnixStream::connect(sock).map_err(|e| err(format!("cannot connect: {e}")))?;
    // A wedged agent must not hang the preflight.
    let timeout = Some(Duration::from_secs(15));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| err(format!("cannot set a timeout: {e}")))?;
    stream
        .write_all(&[0, 0, 0, 1, REQUEST_IDENTITIES])
        .map_err(|e| err(format!("cannot send the request: {e}")))?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| err(format!("no answer: {e}")))?;
    let len = u32::from_be_bytes(len) as usize;
    if !(5..=MAX_ANSWER).contains(&len) {
        return Err(err(format!("malformed answer ({len} bytes)")));
    }
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .map_err(|e| err(format!("truncated answer: {e}")))?;
    if body[0] != IDENTITIES_ANSWER {
        return Err(err(format!(
            "refused to list identities (answer type {})",
            body[0]
        )));
    }
    Ok(u32::from_be_bytes([body[1], body[2], body[3], body[4]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn fake_agent(
        answer: Vec<u8>,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        std::thread::JoinHandle<Vec<u8>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 5];
            s.read_exact(&mut req).unwrap();
            s.write_all(&answer).unwrap();
            req.to_vec()
        });
        (dir, sock, h)
    }

    #[test]
    fn counts_identities() {
        let (_d, sock, h) = fake_agent(vec![0, 0, 0, 5, 12, 0, 0, 0, 3]);
        assert_eq!(count_identities(&sock).unwrap(), 3);
        assert_eq!(h.join().unwrap(), vec![0, 0, 0, 1, 11]);
    }

    #[test]
    fn failure_and_garbage_are_errors() {
        let (_d, sock, _h) = fake_agent(vec![0, 0, 0, 1, 5]);
        let e = count_identities(&sock).unwrap_err().to_string();
        assert!(e.contains("malformed") || e.contains("refused"), "{e}");
        let (_d2, sock2, _h2) = fake_agent(vec![0xff, 0, 0, 0]);
        assert!(count_identities(&sock2).is_err());
        let (_d3, sock3, _h3) = fake_agent(vec![0, 0, 0, 5, 5, 0, 0, 0, 0]);
        assert!(count_identities(&sock3)
            .unwrap_err()
            .to_string()
            .contains("refused"));
    }

    #[test]
    fn missing_socket_names_it() {
        let e = count_identities(Path::new("/nonexistent/agent.sock"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/agent.sock"), "{e}");
    }
}
