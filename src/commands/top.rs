//! `weir top`: a live view of a running bridge over its control socket, refreshed every
//! second: per class the rate against rate and ceil, the queue, drops per second by reason,
//! the delay's p99 and a sparkline of the last minute; the busiest flows below. Keys: `p` or
//! Tab switch port, `s` changes the order, `q` or Esc quits (the terminal is restored).
//! When weir goes away the screen says so and keeps trying to reconnect.

use super::render::top::{draw, Sort, View};
use super::ControlArgs;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weir::control::client::Client;
use weir::control::protocol::{Command, Status};

const REFRESH: Duration = Duration::from_secs(1);

pub fn run(c: &ControlArgs) -> anyhow::Result<ExitCode> {
    // Fail before taking the terminal over when there is no weir to watch.
    let Some(client) = c.connect() else {
        return Ok(ExitCode::FAILURE);
    };
    let mut terminal = ratatui::try_init()?;
    let result = watch(&mut terminal, c, Some(client));
    ratatui::restore();
    result?;
    Ok(ExitCode::SUCCESS)
}

fn watch(
    terminal: &mut ratatui::DefaultTerminal,
    c: &ControlArgs,
    mut client: Option<Client>,
) -> anyhow::Result<()> {
    let mut view = View {
        port: 0,
        sort: Sort::Config,
    };
    let mut status: Option<Status> = None;
    let mut error: Option<String> = None;
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            next = Instant::now() + REFRESH;
            if client.is_none() {
                client = Client::connect(&c.socket).ok();
            }
            match client
                .as_mut()
                .map(|cl| cl.request(Command::Status { history: true }))
            {
                Some(Ok(r)) => {
                    status = r.status;
                    error = None;
                }
                Some(Err(e)) => {
                    error = Some(e.to_string());
                    client = None;
                }
                None => error = Some(format!("no weir answers on {}", c.socket.display())),
            }
        }
        terminal.draw(|f| draw(f, status.as_ref(), view, error.as_deref()))?;
        let wait = next.saturating_duration_since(Instant::now());
        if event::poll(wait)? {
            if let Event::Key(k) = event::read()? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(())
                    }
                    KeyCode::Char('p') | KeyCode::Tab | KeyCode::Left | KeyCode::Right => {
                        let ports = status.as_ref().map_or(2, |s| s.ports.len().max(1));
                        view.port = (view.port + 1) % ports;
                    }
                    KeyCode::Char('s') => view.sort = view.sort.next(),
                    _ => {}
                }
            }
        }
    }
}
