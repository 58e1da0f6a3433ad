//! The client side of the control socket, for `weir status`, `flows`, `reload`, `stop` and
//! `top`: one connection, requests in turn, each answer checked.

use super::protocol::{Command, Request, Response, VERSION};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long an answer may take (a reload reads and validates a file, then waits for every
/// forwarding thread; flows walk the flow table).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no weir is running: nothing listens on {0} (start one with `weir run`, or give its socket with --control PATH)")]
    NotRunning(PathBuf),
    #[error("cannot reach weir at {0}: permission denied (the control socket is root's; run as root, or start weir with --control-group GROUP and join that group)")]
    Denied(PathBuf),
    #[error("talking to weir at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("weir at {path} answered something that is not a response: {message}")]
    Protocol { path: PathBuf, message: String },
    /// weir understood and said no: its message says why.
    #[error("{0}")]
    Refused(String),
}

pub struct Client {
    path: PathBuf,
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning(path.to_path_buf())
            }
            std::io::ErrorKind::PermissionDenied => ClientError::Denied(path.to_path_buf()),
            _ => ClientError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        let io = |source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        };
        stream.set_read_timeout(Some(ANSWER_WITHIN)).map_err(io)?;
        let reader = BufReader::new(stream.try_clone().map_err(io)?);
        Ok(Client {
            path: path.to_path_buf(),
            stream,
            reader,
        })
    }

    /// Send `command` and wait for its answer; an answer that says no is
    /// [`ClientError::Refused`].
    pub fn request(&mut self, command: Command) -> Result<Response, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(&Request {
            v: VERSION,
            command,
        })
        .map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        self.stream.write_all(&line).map_err(io)?;
        let mut answer = String::new();
        let n = self.reader.read_line(&mut answer).map_err(io)?;
        if n == 0 {
            return Err(ClientError::Protocol {
                path: self.path.clone(),
                message: "the connection closed before an answer (is weir stopping?)".into(),
            });
        }
        let response: Response =
            serde_json::from_str(answer.trim()).map_err(|e| ClientError::Protocol {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        if !response.ok {
            return Err(ClientError::Refused(
                response
                    .error
                    .unwrap_or_else(|| "weir refused without saying why".into()),
            ));
        }
        Ok(response)
    }
}
