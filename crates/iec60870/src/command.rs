//! The command procedure (sans-IO): a process command sent direct or select-before-operate,
//! with a deadline and an optional wait for ACT_TERM.
//!
//! [`CommandSequence`] decides the steps; the transport ([`crate::MasterHandle::execute`])
//! sends the ASDUs it asks for ([`Command::asdu`]) and reports each confirmation back:
//!
//! 1. `start`: nothing is sent once the deadline has passed ([`CommandResult::Expired`]);
//!    with select-before-operate (and a type with an S/E bit) the select (S/E = 1) is sent,
//!    else the execute (S/E = 0).
//! 2. A positive select ACT_CON: the deadline is checked again (the select took time; an
//!    execute is never sent late), then the execute is sent. Any other answer ends it.
//! 3. A positive execute ACT_CON: with [`ActTerm::Await`] the transport waits (up to its
//!    `act_term_timeout`) for ACT_TERM, whose absence is no failure; with [`ActTerm::Skip`]
//!    the command is done (outstations differ in when they send ACT_TERM).

use std::time::{Duration, Instant};

use crate::asdu::{Asdu, InformationElement, InformationObject};
use crate::link::{check_timer, ConfigError};
use crate::time::Cp56Time2a;
use crate::types::{Cause, CommonAddress, Cot, Ioa, TimeTagKind, TypeId};

/// Largest wait for a command's ACT_CON (`command_timeout`) or ACT_TERM.
pub const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest age a command may have when it is sent (`command_max_age`).
pub const MAX_COMMAND_AGE: Duration = Duration::from_secs(3600);

/// Checks a wait for a confirmation: 1 ms..=[`MAX_COMMAND_TIMEOUT`].
pub fn check_command_timeout(name: &'static str, d: Duration) -> Result<(), ConfigError> {
    check_timer(name, d, MAX_COMMAND_TIMEOUT)
}

/// Checks a command's largest age: 1 ms..=[`MAX_COMMAND_AGE`].
pub fn check_command_max_age(d: Duration) -> Result<(), ConfigError> {
    check_timer("command_max_age", d, MAX_COMMAND_AGE)
}

/// The deadline of a command that is `age` old at `now` and may be at most `max_age` old
/// when sent; `None` when it is too old already.
pub fn deadline_for_age(now: Instant, age: Duration, max_age: Duration) -> Option<Instant> {
    max_age
        .checked_sub(age)
        .and_then(|left| now.checked_add(left))
}

/// Outcome of a command or system command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandResult {
    /// Positive ACT_CON; `terminated` when ACT_TERM was also received (only awaited with
    /// [`ActTerm::Await`]).
    Confirmed {
        /// ACT_TERM received.
        terminated: bool,
    },
    /// Negative confirmation or COT 44-47.
    Rejected {
        /// The cause in the answer.
        cause: Cause,
        /// The P/N bit.
        negative: bool,
    },
    /// No ACT_CON within `command_timeout`.
    Timeout,
    /// The link was not active or went down before the answer.
    LinkDown,
    /// The deadline passed before the command (or its execute step) could be sent.
    Expired,
}

impl CommandResult {
    /// True for `Confirmed`.
    pub fn is_confirmed(&self) -> bool {
        matches!(self, CommandResult::Confirmed { .. })
    }
}

/// Whether a command waits for ACT_TERM after a positive execute ACT_CON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActTerm {
    /// Done at ACT_CON.
    Skip,
    /// Wait up to the master's `act_term_timeout`; a missing ACT_TERM is no failure
    /// (`Confirmed { terminated: false }`).
    Await,
}

/// One process command (or parameter) to one information object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Command {
    /// The type sent (a time-tagged type carries the time of each send).
    pub type_id: TypeId,
    /// The station.
    pub common_address: CommonAddress,
    /// The information object.
    pub ioa: Ioa,
    /// The element (its S/E bit is set by the procedure).
    pub element: InformationElement,
    /// Select, then execute (types without an S/E bit are always sent direct).
    pub select_before_operate: bool,
    /// Whether to wait for ACT_TERM.
    pub act_term: ActTerm,
    /// Nothing of the command is sent after this instant.
    pub deadline: Option<Instant>,
}

/// True for a command element with its S/E bit set (a select).
pub fn is_select(element: &InformationElement) -> bool {
    use InformationElement as E;
    matches!(
        element,
        E::SingleCommand { select: true, .. }
            | E::DoubleCommand { select: true, .. }
            | E::RegulatingStep { select: true, .. }
            | E::SetpointNormalized { select: true, .. }
            | E::SetpointScaled { select: true, .. }
            | E::SetpointFloat { select: true, .. }
    )
}

/// The element with its S/E bit set to `select` (elements without one unchanged).
pub fn with_select(element: &InformationElement, select: bool) -> InformationElement {
    use InformationElement as E;
    let mut e = *element;
    match &mut e {
        E::SingleCommand { select: s, .. }
        | E::DoubleCommand { select: s, .. }
        | E::RegulatingStep { select: s, .. }
        | E::SetpointNormalized { select: s, .. }
        | E::SetpointScaled { select: s, .. }
        | E::SetpointFloat { select: s, .. } => *s = select,
        _ => {}
    }
    e
}

impl Command {
    /// A direct command without deadline that does not wait for ACT_TERM.
    pub fn direct(
        type_id: TypeId,
        common_address: CommonAddress,
        ioa: Ioa,
        element: InformationElement,
    ) -> Self {
        Self {
            type_id,
            common_address,
            ioa,
            element,
            select_before_operate: false,
            act_term: ActTerm::Skip,
            deadline: None,
        }
    }

    /// True when a select step is sent first.
    pub fn selects(&self) -> bool {
        self.select_before_operate && self.type_id.has_select()
    }

    /// The activation ASDU of the select (`select`) or execute step; a CP56 time-tagged type
    /// carries `time` (the current time when it is sent).
    pub fn asdu(&self, select: bool, originator: u8, time: Option<Cp56Time2a>) -> Asdu {
        let cot = Cot {
            originator,
            ..Cot::new(Cause::ACTIVATION)
        };
        let element = with_select(&self.element, select);
        let obj = match (self.type_id.time_tag(), time) {
            (TimeTagKind::Cp56, Some(t)) => InformationObject::with_cp56(self.ioa, element, t),
            _ => InformationObject::new(self.ioa, element),
        };
        Asdu::single(self.type_id, cot, self.common_address, obj)
    }

    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now > d)
    }
}

/// What the transport must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStep {
    /// Send the select (`select: true`) or the execute activation, then report its outcome
    /// with [`CommandSequence::on_confirmation`].
    Send {
        /// The S/E bit of this step.
        select: bool,
    },
    /// Wait for ACT_TERM, then call [`CommandSequence::on_termination`].
    AwaitTermination,
    /// Finished.
    Done(CommandResult),
}

/// The steps of one [`Command`].
#[derive(Debug, Clone)]
pub struct CommandSequence {
    command: Command,
    step: CommandStep,
}

impl CommandSequence {
    /// Starts a command at `now`: its first step.
    pub fn start(command: Command, now: Instant) -> (Self, CommandStep) {
        let step = if command.expired(now) {
            CommandStep::Done(CommandResult::Expired)
        } else {
            CommandStep::Send {
                select: command.selects(),
            }
        };
        (Self { command, step }, step)
    }

    /// The command.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// The outcome of the step just sent (its ACT_CON, a rejection, a timeout, ...) at `now`.
    /// Ignored (the current step returned) unless a step was sent.
    pub fn on_confirmation(&mut self, result: CommandResult, now: Instant) -> CommandStep {
        let CommandStep::Send { select } = self.step else {
            return self.step;
        };
        self.step = if !result.is_confirmed() {
            CommandStep::Done(result)
        } else if select {
            if self.command.expired(now) {
                CommandStep::Done(CommandResult::Expired)
            } else {
                CommandStep::Send { select: false }
            }
        } else if self.command.act_term == ActTerm::Await {
            CommandStep::AwaitTermination
        } else {
            CommandStep::Done(CommandResult::Confirmed { terminated: false })
        };
        self.step
    }

    /// Whether ACT_TERM arrived in time. Ignored unless it was awaited.
    pub fn on_termination(&mut self, received: bool) -> CommandStep {
        if self.step == CommandStep::AwaitTermination {
            self.step = CommandStep::Done(CommandResult::Confirmed {
                terminated: received,
            });
        }
        self.step
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects, clippy::panic)]
    use super::*;
    use crate::asdu::TimeTag;

    const CONFIRMED: CommandResult = CommandResult::Confirmed { terminated: false };

    fn cmd(type_id: TypeId, sbo: bool, act_term: ActTerm, deadline: Option<Instant>) -> Command {
        Command {
            select_before_operate: sbo,
            act_term,
            deadline,
            ..Command::direct(
                type_id,
                CommonAddress(7),
                Ioa(500),
                InformationElement::SetpointFloat {
                    value: 1.5,
                    ql: 0,
                    select: false,
                },
            )
        }
    }

    /// A script event: started, ACT_CON (or failure) at an offset from t0, ACT_TERM or not.
    enum Ev {
        Start(Duration),
        Con(CommandResult, Duration),
        Term(bool),
    }

    /// Runs a script of (event, expected step) pairs; the first event is the start.
    fn run(c: Command, t0: Instant, script: &[(Ev, CommandStep)]) {
        let mut seq = None;
        for (i, (ev, want)) in script.iter().enumerate() {
            let got = match (ev, seq.as_mut()) {
                (Ev::Start(at), None) => {
                    let (s, step) = CommandSequence::start(c, t0 + *at);
                    seq = Some(s);
                    step
                }
                (Ev::Con(r, at), Some(s)) => s.on_confirmation(*r, t0 + *at),
                (Ev::Term(t), Some(s)) => s.on_termination(*t),
                _ => panic!("step {i}: start first, once"),
            };
            assert_eq!(got, *want, "step {i}");
        }
    }

    const SELECT: CommandStep = CommandStep::Send { select: true };
    const EXECUTE: CommandStep = CommandStep::Send { select: false };
    const ZERO: Duration = Duration::ZERO;

    #[test]
    fn select_then_execute_then_done() {
        let t0 = Instant::now();
        let c = cmd(TypeId::C_SE_NC_1, true, ActTerm::Skip, None);
        run(
            c,
            t0,
            &[
                (Ev::Start(ZERO), SELECT),
                (Ev::Con(CONFIRMED, ZERO), EXECUTE),
                (Ev::Con(CONFIRMED, ZERO), CommandStep::Done(CONFIRMED)),
                // late events change nothing
                (Ev::Term(true), CommandStep::Done(CONFIRMED)),
                (
                    Ev::Con(CommandResult::Timeout, ZERO),
                    CommandStep::Done(CONFIRMED),
                ),
            ],
        );
    }

    #[test]
    fn act_term_awaited_or_missing() {
        let t0 = Instant::now();
        let c = cmd(TypeId::C_SE_NC_1, true, ActTerm::Await, None);
        let done = |terminated| CommandStep::Done(CommandResult::Confirmed { terminated });
        run(
            c,
            t0,
            &[
                (Ev::Start(ZERO), SELECT),
                // an ACT_TERM before the execute's ACT_CON is not the execute's
                (Ev::Term(true), SELECT),
                (Ev::Con(CONFIRMED, ZERO), EXECUTE),
                (Ev::Con(CONFIRMED, ZERO), CommandStep::AwaitTermination),
                (Ev::Term(true), done(true)),
            ],
        );
        run(
            c,
            t0,
            &[
                (Ev::Start(ZERO), SELECT),
                (Ev::Con(CONFIRMED, ZERO), EXECUTE),
                (Ev::Con(CONFIRMED, ZERO), CommandStep::AwaitTermination),
                (Ev::Term(false), done(false)),
            ],
        );
    }

    #[test]
    fn a_rejected_or_unanswered_select_is_never_executed() {
        let t0 = Instant::now();
        let c = cmd(TypeId::C_SE_NC_1, true, ActTerm::Skip, None);
        let rejected = CommandResult::Rejected {
            cause: Cause::ACTIVATION_CON,
            negative: true,
        };
        for r in [rejected, CommandResult::Timeout, CommandResult::LinkDown] {
            run(
                c,
                t0,
                &[
                    (Ev::Start(ZERO), SELECT),
                    (Ev::Con(r, ZERO), CommandStep::Done(r)),
                ],
            );
        }
        // a rejected execute ends it too, ACT_TERM or not
        let c = cmd(TypeId::C_SE_NC_1, true, ActTerm::Await, None);
        run(
            c,
            t0,
            &[
                (Ev::Start(ZERO), SELECT),
                (Ev::Con(CONFIRMED, ZERO), EXECUTE),
                (Ev::Con(rejected, ZERO), CommandStep::Done(rejected)),
            ],
        );
    }

    #[test]
    fn the_deadline_holds_before_select_and_before_execute() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let expired = CommandStep::Done(CommandResult::Expired);
        let c = cmd(TypeId::C_SE_NC_1, true, ActTerm::Skip, Some(t0 + ms(100)));
        // too old before anything is sent
        run(c, t0, &[(Ev::Start(ms(101)), expired)]);
        // the select took too long: no execute
        run(
            c,
            t0,
            &[
                (Ev::Start(ms(10)), SELECT),
                (Ev::Con(CONFIRMED, ms(101)), expired),
            ],
        );
        // exactly at the deadline is still in time; the execute's ACT_CON may come later
        run(
            c,
            t0,
            &[
                (Ev::Start(ms(10)), SELECT),
                (Ev::Con(CONFIRMED, ms(100)), EXECUTE),
                (Ev::Con(CONFIRMED, ms(500)), CommandStep::Done(CONFIRMED)),
            ],
        );
        // a direct command checks it once, before it is sent
        let c = cmd(TypeId::C_SE_NC_1, false, ActTerm::Skip, Some(t0 + ms(100)));
        run(
            c,
            t0,
            &[
                (Ev::Start(ms(100)), EXECUTE),
                (Ev::Con(CONFIRMED, ms(900)), CommandStep::Done(CONFIRMED)),
            ],
        );
        run(c, t0, &[(Ev::Start(ms(101)), expired)]);
    }

    #[test]
    fn types_without_select_bit_go_direct() {
        let t0 = Instant::now();
        let mut c = cmd(TypeId::C_BO_NA_1, true, ActTerm::Skip, None);
        c.element = InformationElement::Bitstring32Command { value: 5 };
        assert!(!c.selects());
        run(
            c,
            t0,
            &[
                (Ev::Start(ZERO), EXECUTE),
                (Ev::Con(CONFIRMED, ZERO), CommandStep::Done(CONFIRMED)),
            ],
        );
    }

    #[test]
    fn deadline_of_an_age() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(deadline_for_age(t0, s(3), s(10)), Some(t0 + s(7)));
        assert_eq!(deadline_for_age(t0, s(10), s(10)), Some(t0));
        assert_eq!(deadline_for_age(t0, s(11), s(10)), None);
    }

    #[test]
    fn asdus_carry_select_and_time() {
        let t = Cp56Time2a::from_unix_ms(1_700_000_000_000).unwrap();
        let c = cmd(TypeId::C_SE_TC_1, true, ActTerm::Skip, None);
        let a = c.asdu(true, 3, Some(t));
        assert_eq!(a.type_id, TypeId::C_SE_TC_1);
        assert_eq!(a.cot.originator, 3);
        assert_eq!(a.cot.cause, Cause::ACTIVATION);
        assert_eq!(a.common_address, CommonAddress(7));
        let obj = a.objects.first().unwrap();
        assert_eq!(
            obj.element,
            InformationElement::SetpointFloat {
                value: 1.5,
                ql: 0,
                select: true
            }
        );
        assert_eq!(obj.time, Some(TimeTag::Cp56(t)));
        a.encode(&crate::AsduSizes::default()).unwrap();
        let c = cmd(TypeId::C_SE_NC_1, true, ActTerm::Skip, None);
        let a = c.asdu(false, 0, Some(t));
        assert_eq!(a.objects.first().unwrap().time, None);
    }

    #[test]
    fn timing_ranges() {
        assert!(check_command_timeout("command_timeout", Duration::ZERO).is_err());
        assert!(check_command_timeout("command_timeout", MAX_COMMAND_TIMEOUT).is_ok());
        assert!(check_command_max_age(MAX_COMMAND_AGE + Duration::from_millis(1)).is_err());
    }
}
