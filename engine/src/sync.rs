//! Sync of a local store with a remote FHIR server, sans-IO: [`Sync`] says which HTTP request
//! to send next ([`Sync::next`]) and takes the reply back ([`Sync::receive`]); the host moves
//! the bytes (with `fetch`, or a simulated network in tests) and adds what is its own
//! (`Authorization`). The local side is a [`Service`], written through the same paths as a
//! REST write (validated, indexed, in the write log).
//!
//! A sync is rounds of pull then push:
//! - **pull**: the first time, a download of the scope by search with paging (or
//!   `Patient/$everything`); after that, `_history?_since=checkpoint` (or a search by
//!   `_lastUpdated` where the server has no history), inclusive, so resources sharing the
//!   checkpoint's instant come again and are recognised by their version. The next checkpoint
//!   is the earliest `Date` of the server's first reply to each query (every write after it is
//!   seen next time); without dates, the newest write a single history query brought, or the
//!   server's newest history entry before a first download. Each page is checked and applied
//!   in one store transaction; a resource that fails validation is reported and left out.
//!   Remote versions meet local changes in a three-way merge ([`merge`]); what does not merge
//!   is a [`Conflict`], held until resolved.
//! - **push**: local changes since the last push (the write log), one per resource, in a
//!   transaction Bundle (a batch when the server has no transaction, or to learn which entry
//!   a failed transaction refused), `If-Match` on the base's remote version (never an update
//!   without it); a new resource is a `PUT` with its local id, so a reply that never came
//!   cannot make a duplicate, or, where the server assigns ids, a `POST` with `If-None-Exist`
//!   ([`create`]). A push without a usable reply is followed by a pull before it is
//!   sent again, and so is an entry the server found stale; a push refused whole (not
//!   authorised, redirected, too large) ends the sync with its edits kept for the next one.
//!
//! **Invariant:** nothing is acknowledged that the store did not commit: a pulled page, a
//! push's results and the checkpoints are each written in one store transaction with the
//! records that describe them ([`local`]).

mod create;
mod local;
mod merge;
pub(crate) mod wire;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

pub use local::{Conflict, Resolution};

use crate::rest::{encode_component, Service};
use crate::store::{Store, StoreError, Transaction};
use local::{ykey, Applied, Base};
use wire::{Capabilities, Item, Page};

/// What to keep of the remote's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A patient's compartment (`Patient/$everything`).
    Patient(String),
    /// Every resource of these types.
    Types(Vec<String>),
    /// The results of these searches (`Observation?category=vital-signs`).
    Searches(Vec<String>),
}

impl Scope {
    fn key(&self) -> String {
        match self {
            Scope::Patient(id) => format!("patient:{id}"),
            Scope::Types(types) => format!("types:{}", types.join(",")),
            Scope::Searches(searches) => format!("searches:{}", searches.join("\u{1}")),
        }
    }
}

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to keep.
    pub scope: Scope,
    /// `_count` of each page pulled.
    pub page_size: usize,
    /// Most resources pushed in one Bundle.
    pub push_size: usize,
    /// Most pull-then-push rounds (a round follows a push some of whose entries were stale).
    pub max_rounds: usize,
    /// Most attempts of one request that fails without an answer, or with 429 or 5xx.
    pub max_attempts: u32,
    /// False: a pulled resource that breaks the FHIR JSON rules (an unknown element, say) is
    /// stored without the elements at fault, with a warning, instead of being left out; a
    /// local change to it is then not pushed (a `PUT` would remove those elements there).
    pub strict: bool,
}

impl Options {
    /// The defaults for `scope`: pages of 200, pushes of 100, 4 rounds, 4 attempts.
    pub fn new(scope: Scope) -> Options {
        Options {
            scope,
            page_size: 200,
            push_size: 100,
            max_rounds: 4,
            max_attempts: 4,
            strict: true,
        }
    }
}

/// A request for the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute, under the remote's base URL.
    pub url: String,
    /// Headers to send (the host adds its own, such as `Authorization`).
    pub headers: Vec<(String, String)>,
    /// The body (empty for a GET).
    pub body: Vec<u8>,
}

/// The reply the host received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Names in any case.
    pub headers: Vec<(String, String)>,
    /// The body, as received.
    pub body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What the host does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this request and pass its reply (or the failure) to [`Sync::receive`].
    Send(HttpRequest),
    /// Wait this long (a `Retry-After`, or backing off), then call [`Sync::next`] again.
    Wait {
        /// Milliseconds.
        millis: u64,
    },
    /// The sync is over; [`Sync::summary`] says how it went.
    Done,
}

/// A problem the sync met: about one resource, or the whole sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// `Type/id`, when it concerns one resource.
    pub resource: Option<String>,
    /// What happened.
    pub message: String,
}

/// How a sync went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Remote versions stored locally.
    pub pulled: usize,
    /// Local changes the remote acknowledged.
    pub pushed: usize,
    /// Remote and local changes merged by themselves.
    pub merged: usize,
    /// New conflicts.
    pub conflicts: usize,
    /// Requests sent.
    pub requests: usize,
    /// Problems met (the sync went on past those about one resource).
    pub issues: Vec<Issue>,
    /// Resources stored without elements that could not be read (with `strict` false).
    pub warnings: Vec<Issue>,
    /// True when the sync ran to its end (pulled, and pushed all it could).
    pub complete: bool,
}

/// The progress of a sync, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// `"capabilities"`, `"pull"`, `"push"` or `"done"`.
    pub phase: &'static str,
    /// Resources pulled or pushed so far in the phase.
    pub done: usize,
    /// When known (a searchset's `total`, or the changes to push).
    pub total: Option<usize>,
}

/// What a request sent was for.
#[derive(Debug, Clone)]
enum Sent {
    Capabilities,
    Checkpoint,
    /// `GET [type]/[id]` of a resource a push found stale.
    Refresh {
        type_name: String,
        id: String,
    },
    Page {
        incremental: bool,
        filter: Filter,
        /// The first page of its query (its `Date` bounds the checkpoint).
        first: bool,
    },
    Push {
        items: Vec<Pushed>,
        log_to: u64,
        transaction: bool,
    },
}

/// Which resources of a page belong to the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    All,
    /// Those in the patient's compartment, or known locally.
    Compartment,
    /// Those known locally only.
    Known,
    /// Those of the scope's types.
    Types,
}

/// What [`Sync::pushable`] finds.
enum Pushable {
    Send(Pushed),
    /// Nothing to push (unchanged, held by a conflict or a refusal).
    Nothing,
    /// Not before a pull tells the remote version it is based on.
    AfterPull,
    /// Held: the remote version was read leniently, and a `PUT` would remove what was left out.
    Lossy,
}

#[derive(Debug, Clone)]
struct Pushed {
    type_name: String,
    id: String,
    /// The local version sent.
    local: u64,
    deleted: bool,
    /// The base's remote version, for `If-Match` (none for a new resource).
    if_match: Option<String>,
    /// For a new resource on a server that assigns ids: the `If-None-Exist` query of its
    /// `POST` ([`create`]).
    create: Option<String>,
}

#[derive(Debug)]
enum Phase {
    Start,
    /// Pull pages.
    Pull(Box<PullState>),
    Push,
    Done,
}

/// A pull: its queries, and what bounds the next checkpoint.
#[derive(Debug, Default)]
struct PullState {
    /// The first page of each query not yet asked.
    queue: VecDeque<(String, bool, Filter)>,
    /// The next page of the query in hand.
    next: Option<(String, bool, Filter)>,
    /// The checkpoint this pull started from (`None`: a first download).
    since: Option<String>,
    /// The newest write of the server before the first download (`_history?_count=1`).
    probe: Option<String>,
    /// For a first download: when the first attempt at it began (kept in the store, so that a
    /// download interrupted and started again still sees what was deleted in between).
    floor: Option<String>,
    /// Whether `floor` comes from an earlier attempt at this download (this one resumes it).
    resumed: bool,
    /// Queries sent, and how many of their first pages carried a `Date`.
    queries: usize,
    dated: usize,
    /// The earliest `Date` of a query's first page: every write after it is seen next time.
    earliest_date: Option<String>,
    /// The newest instant the pages brought.
    newest: Option<String>,
    /// Resources applied by the query in hand: history is newest first, so an older version
    /// of one is not applied after it.
    seen: BTreeSet<(String, String)>,
    /// Pages of the query in hand that brought nothing, in a row; and the pages asked.
    empty_pages: u32,
    visited: BTreeSet<String>,
}

impl PullState {
    /// Where the next pull starts: the earliest moment a query of this one started, when the
    /// server dated each; else, for one query, the newest write it brought (history is read
    /// newest first, so nothing older is missed); else where this pull started.
    ///
    /// A new checkpoint is set [`CHECKPOINT_MARGIN_MS`] earlier than what bounds it: the
    /// clock that dates replies and the one that stamps writes may differ, and a write may be
    /// stamped before it commits. What comes again is recognised by its version.
    fn checkpoint(&self) -> Option<String> {
        let all_dated = self.queries > 0 && self.dated == self.queries;
        // A download that began in this attempt saw, in each query, everything committed before
        // the query's `Date`: its checkpoint is the earliest of those. One resumed from an
        // earlier attempt goes back to where that began, to see what was deleted in between.
        let fresh = if self.floor.is_some() && (self.resumed || !all_dated) {
            self.floor.clone()
        } else if all_dated {
            self.earliest_date.clone()
        } else if self.queries == 1 && self.since.is_some() {
            self.newest.clone()
        } else if self.since.is_some() {
            None
        } else {
            self.probe.clone()
        };
        let fresh = fresh.map(|instant| earlier_by(&instant, CHECKPOINT_MARGIN_MS));
        // Never earlier than where this pull started.
        later(self.since.clone(), fresh)
    }
}

fn later(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if instant_ms(&b) > instant_ms(&a) {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// How much earlier than what bounds it a checkpoint is set (two minutes).
const CHECKPOINT_MARGIN_MS: i64 = 120_000;

/// `instant` moved `ms` earlier, as an instant in UTC with milliseconds; `instant` itself when
/// it cannot be read.
fn earlier_by(instant: &str, ms: i64) -> String {
    let Some((low, _)) = crate::search::index::date_text_range(instant) else {
        return instant.to_string();
    };
    let at = low.saturating_sub(ms);
    let (days, in_day) = (at.div_euclid(86_400_000), at.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(1..=9999).contains(&year) {
        return instant.to_string();
    }
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Most pages in a row that bring nothing before a pull gives up on a server's paging.
const MAX_EMPTY_PAGES: u32 = 3;

/// One sync run against one remote. See the module documentation.
pub struct Sync {
    remote: String,
    options: Options,
    phase: Phase,
    caps: Option<Capabilities>,
    /// The request in flight, and what it was for.
    sent: Option<(HttpRequest, Sent)>,
    /// Failed attempts of the request to send again.
    retry: Option<(HttpRequest, Sent, u32)>,
    /// A wait to announce before the retry.
    wait: Option<u64>,
    round: usize,
    /// A push met stale bases: pull and push again.
    again: bool,
    /// Resources pushed in this round (not sent again before a pull).
    attempted: BTreeSet<(String, String)>,
    /// Resources the server found stale at a push: read by id in the next pull.
    refresh: BTreeSet<(String, String)>,
    /// Resources found stale once in this sync (a second time is a refusal).
    stale: BTreeSet<(String, String)>,
    /// What a lenient read left out of each resource of the page being applied.
    left_out: BTreeMap<(String, String), String>,
    /// Local changes held from push as lossy, reported once per sync.
    held_reported: BTreeSet<(String, String)>,
    summary: Summary,
    progress: Progress,
}

impl Sync {
    /// A sync with the server at `remote` (its base URL, `https://example.org/fhir`).
    pub fn new(remote: &str, options: Options) -> Sync {
        Sync {
            remote: remote.trim_end_matches('/').to_string(),
            options,
            phase: Phase::Start,
            caps: None,
            sent: None,
            retry: None,
            wait: None,
            round: 0,
            again: false,
            attempted: BTreeSet::new(),
            refresh: BTreeSet::new(),
            stale: BTreeSet::new(),
            left_out: BTreeMap::new(),
            held_reported: BTreeSet::new(),
            summary: Summary::default(),
            progress: Progress {
                phase: "capabilities",
                done: 0,
                total: None,
            },
        }
    }

    /// How the sync went so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Where the sync is.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    fn get(&self, url: String) -> HttpRequest {
        HttpRequest {
            method: String::from("GET"),
            url,
            headers: alloc::vec![(
                String::from("Accept"),
                String::from("application/fhir+json")
            )],
            body: Vec::new(),
        }
    }

    fn send(&mut self, request: HttpRequest, sent: Sent) -> Step {
        self.summary.requests += 1;
        self.sent = Some((request.clone(), sent));
        Step::Send(request)
    }

    fn fail(&mut self, message: String) -> Step {
        self.summary.issues.push(Issue {
            resource: None,
            message,
        });
        self.phase = Phase::Done;
        self.progress.phase = "done";
        Step::Done
    }

    /// What to do next.
    pub async fn next<S: Store>(&mut self, local: &Service<S>) -> Step {
        match self.next_inner(local).await {
            Ok(step) => step,
            Err(err) => self.fail(format!("the local store failed: {}", err.message)),
        }
    }

    async fn next_inner<S: Store>(&mut self, local: &Service<S>) -> Result<Step, StoreError> {
        if self.sent.is_some() {
            // The reply to the request in flight has not come back; it is lost.
            self.receive_failure(String::from("no reply was passed back"));
        }
        if let Some(millis) = self.wait.take() {
            return Ok(Step::Wait { millis });
        }
        if let Some((request, sent, attempts)) = self.retry.take() {
            self.retry = Some((request.clone(), sent.clone(), attempts));
            self.summary.requests += 1;
            self.sent = Some((request.clone(), sent));
            return Ok(Step::Send(request));
        }
        loop {
            match &mut self.phase {
                Phase::Done => return Ok(Step::Done),
                Phase::Start => {
                    if self.caps.is_none() {
                        // What the server offers, as learnt at an earlier sync, or asked now.
                        let mut tx = local.replica_begin(false).await?;
                        self.caps = tx
                            .get(&ykey(&self.remote, &["k"]))
                            .await?
                            .and_then(|v| Capabilities::from_text(core::str::from_utf8(&v).ok()?));
                    }
                    if self.caps.is_none() {
                        let request = self.get(format!("{}/metadata", self.remote));
                        return Ok(self.send(request, Sent::Capabilities));
                    }
                    self.round += 1;
                    self.again = false;
                    self.attempted.clear();
                    self.progress = Progress {
                        phase: "pull",
                        done: 0,
                        total: None,
                    };
                    let since = {
                        let mut tx = local.replica_begin(false).await?;
                        let key = ykey(&self.remote, &["c", &self.options.scope.key()]);
                        tx.get(&key)
                            .await?
                            .map(|v| String::from_utf8(v).unwrap_or_default())
                    };
                    // Resources found stale by an earlier sync: read by id in this pull.
                    {
                        let mut tx = local.replica_begin(false).await?;
                        for (key, marked) in local::retries(&mut tx, &self.remote).await? {
                            if marked {
                                self.refresh.insert(key);
                            }
                        }
                    }
                    let caps = self.caps.clone().unwrap_or_default();
                    match since {
                        Some(since) => {
                            let queue = self.incremental(&since);
                            self.phase = Phase::Pull(Box::new(PullState {
                                queue,
                                since: Some(since),
                                ..PullState::default()
                            }));
                        }
                        None => {
                            let floor = {
                                let mut tx = local.replica_begin(false).await?;
                                let key = ykey(&self.remote, &["d", &self.options.scope.key()]);
                                tx.get(&key)
                                    .await?
                                    .map(|v| String::from_utf8(v).unwrap_or_default())
                            };
                            let resumed = floor.is_some();
                            if caps.history_system {
                                self.phase = Phase::Pull(Box::new(PullState {
                                    floor,
                                    resumed,
                                    ..PullState::default()
                                }));
                                let request =
                                    self.get(format!("{}/_history?_count=1", self.remote));
                                return Ok(self.send(request, Sent::Checkpoint));
                            }
                            let queue = self.download();
                            self.phase = Phase::Pull(Box::new(PullState {
                                queue,
                                floor,
                                resumed,
                                ..PullState::default()
                            }));
                        }
                    }
                }
                Phase::Pull(pull) => {
                    let (page, first) = match pull.next.take() {
                        Some(page) => (Some(page), false),
                        None => (pull.queue.pop_front(), true),
                    };
                    if let Some((url, incremental, filter)) = page {
                        if first {
                            pull.queries += 1;
                            pull.seen.clear();
                            pull.empty_pages = 0;
                        }
                        let request = self.get(url);
                        return Ok(self.send(
                            request,
                            Sent::Page {
                                incremental,
                                filter,
                                first,
                            },
                        ));
                    }
                    // Each resource a push found stale, read by id.
                    if let Some((type_name, id)) = self.refresh.pop_first() {
                        pull.seen.clear();
                        let request = self.get(format!(
                            "{}/{type_name}/{}",
                            self.remote,
                            encode_component(&id)
                        ));
                        return Ok(self.send(request, Sent::Refresh { type_name, id }));
                    }
                    // Every page applied: the checkpoint moves.
                    if let Some(checkpoint) = pull.checkpoint() {
                        let mut tx = local.replica_begin(true).await?;
                        tx.put(
                            ykey(&self.remote, &["c", &self.options.scope.key()]),
                            checkpoint.into_bytes(),
                        );
                        tx.delete(ykey(&self.remote, &["d", &self.options.scope.key()]));
                        tx.commit().await?;
                    }
                    self.phase = Phase::Push;
                    self.progress = Progress {
                        phase: "push",
                        done: 0,
                        total: None,
                    };
                }
                Phase::Push => {
                    let (items, log_to, body) = self.gather(local).await?;
                    if items.is_empty() {
                        if log_to > 0 {
                            let mut tx = local.replica_begin(true).await?;
                            tx.put(ykey(&self.remote, &["s"]), format!("{log_to}").into_bytes());
                            tx.commit().await?;
                            continue;
                        }
                        if self.again && self.round < self.options.max_rounds {
                            self.phase = Phase::Start;
                            continue;
                        }
                        if self.again {
                            self.summary.issues.push(Issue {
                                resource: None,
                                message: format!(
                                    "changes were still stale after {} rounds; they are pushed at the next sync",
                                    self.round
                                ),
                            });
                        } else {
                            self.summary.complete = true;
                        }
                        self.phase = Phase::Done;
                        self.progress.phase = "done";
                        return Ok(Step::Done);
                    }
                    let caps = self.caps.clone().unwrap_or_default();
                    let transaction = caps.transaction || !caps.batch;
                    let request = self.bundle(&items, &body, transaction);
                    return Ok(self.send(
                        request,
                        Sent::Push {
                            items,
                            log_to,
                            transaction,
                        },
                    ));
                }
            }
        }
    }

    /// The first pages of a first download of the scope.
    fn download(&self) -> VecDeque<(String, bool, Filter)> {
        let (remote, count) = (&self.remote, self.options.page_size);
        let caps = self.caps.clone().unwrap_or_default();
        match &self.options.scope {
            Scope::Patient(id) if caps.everything => [(
                format!(
                    "{remote}/Patient/{}/$everything?_count={count}",
                    encode_component(id)
                ),
                false,
                Filter::All,
            )]
            .into(),
            Scope::Patient(id) => {
                // No $everything: the compartment's members, type by type and parameter by
                // parameter.
                let mut queue: VecDeque<_> = [(
                    format!(
                        "{remote}/Patient?_id={}&_count={count}",
                        encode_component(id)
                    ),
                    false,
                    Filter::All,
                )]
                .into();
                if let Some((_, members)) = crate::model::COMPARTMENTS
                    .iter()
                    .find(|(focus, _)| *focus == "Patient")
                {
                    for (type_name, params) in members.iter() {
                        for param in params.iter() {
                            queue.push_back((
                                format!(
                                    "{remote}/{type_name}?{param}=Patient/{}&_count={count}",
                                    encode_component(id)
                                ),
                                false,
                                Filter::All,
                            ));
                        }
                    }
                }
                queue
            }
            Scope::Types(types) => types
                .iter()
                .map(|t| (format!("{remote}/{t}?_count={count}"), false, Filter::All))
                .collect(),
            Scope::Searches(searches) => searches
                .iter()
                .map(|search| (with_count(remote, search, count), false, Filter::All))
                .collect(),
        }
    }

    /// The first pages of an incremental pull since `since`.
    fn incremental(&self, since: &str) -> VecDeque<(String, bool, Filter)> {
        let (remote, count) = (&self.remote, self.options.page_size);
        let since = encode_component(since);
        let caps = self.caps.clone().unwrap_or_default();
        match &self.options.scope {
            Scope::Patient(_) if caps.history_system => [(
                format!("{remote}/_history?_since={since}&_count={count}"),
                true,
                Filter::Compartment,
            )]
            .into(),
            // Without history: what changed since, by `$everything`'s `_since`.
            Scope::Patient(id) if caps.everything => [(
                format!(
                    "{remote}/Patient/{}/$everything?_since={since}&_count={count}",
                    encode_component(id)
                ),
                true,
                Filter::All,
            )]
            .into(),
            Scope::Patient(_) => self.download(),
            // Several types: one system history, when the server has it.
            Scope::Types(types) if types.len() > 1 && caps.history_system => [(
                format!("{remote}/_history?_since={since}&_count={count}"),
                true,
                Filter::Types,
            )]
            .into(),
            // Type history, or where the server offers none, a search by `_lastUpdated`
            // (which cannot see deletions).
            Scope::Types(types) => types
                .iter()
                .map(|t| {
                    let url = if caps.history_system || caps.history_types.contains(t) {
                        format!("{remote}/{t}/_history?_since={since}&_count={count}")
                    } else {
                        format!("{remote}/{t}?_lastUpdated=ge{since}&_count={count}")
                    };
                    (url, true, Filter::All)
                })
                .collect(),
            Scope::Searches(searches) => {
                let mut queue = VecDeque::new();
                let mut types: Vec<&str> = Vec::new();
                for search in searches {
                    let type_name = search.split(['?', '/']).next().unwrap_or_default();
                    if !types.contains(&type_name) {
                        types.push(type_name);
                    }
                    // New and changed matches.
                    let url = with_count(remote, search, count);
                    let joiner = if url.contains('?') { '&' } else { '?' };
                    queue.push_back((
                        format!("{url}{joiner}_lastUpdated=ge{since}"),
                        true,
                        Filter::All,
                    ));
                }
                // Deletions (and changes) of what is held here.
                for type_name in types {
                    queue.push_back((
                        format!("{remote}/{type_name}/_history?_since={since}&_count={count}"),
                        true,
                        Filter::Known,
                    ));
                }
                queue
            }
        }
    }

    /// Takes back the reply to the request [`Sync::next`] asked for (`Err`: no reply came:
    /// the connection failed, or the host gave up waiting).
    pub async fn receive<S: Store>(
        &mut self,
        local: &Service<S>,
        reply: Result<HttpReply, String>,
    ) {
        let reply = match reply {
            Ok(reply) => reply,
            Err(message) => {
                self.receive_failure(message);
                return;
            }
        };
        let Some((request, sent)) = self.sent.take() else {
            return;
        };
        if reply.status == 429 || reply.status >= 500 {
            let after = reply
                .header("retry-after")
                .and_then(|value| value.trim().parse::<u64>().ok())
                // At most five minutes: a longer wait is the host's to schedule.
                .map(|seconds| seconds.min(300).saturating_mul(1000));
            self.sent = Some((request, sent));
            self.fail_attempt(wire::reply_message(reply.status, &reply.body), after);
            return;
        }
        // Answered: a later request starts its own count of attempts.
        self.retry = None;
        if let Err(err) = self.take_reply(local, &request, sent, reply).await {
            self.fail(format!("the local store failed: {}", err.message));
        }
    }

    fn receive_failure(&mut self, message: String) {
        self.fail_attempt(message, None);
    }

    /// A request failed without a usable answer: try it again after a wait, up to
    /// `max_attempts`; a push is not sent again before a pull shows whether it landed.
    fn fail_attempt(&mut self, message: String, after: Option<u64>) {
        let Some((request, sent)) = self.sent.take() else {
            return;
        };
        let attempts = match &self.retry {
            Some((previous, _, attempts)) if *previous == request => attempts + 1,
            _ => 1,
        };
        if attempts >= self.options.max_attempts {
            self.retry = None;
            self.fail(format!(
                "{} {} failed {attempts} times; the last: {message}",
                request.method, request.url
            ));
            return;
        }
        self.wait = Some(after.unwrap_or(500u64 << attempts.min(6)));
        if matches!(sent, Sent::Push { .. }) {
            // Whether it landed, the next pull says; the push is then gathered again.
            self.retry = None;
            self.again = false;
            if self.round >= self.options.max_rounds {
                self.fail(format!(
                    "{} {} failed; the last: {message}",
                    request.method, request.url
                ));
                return;
            }
            self.phase = Phase::Start;
            // Counted as an attempt of this push by the rounds it takes.
            return;
        }
        self.retry = Some((request, sent, attempts));
    }

    async fn take_reply<S: Store>(
        &mut self,
        local: &Service<S>,
        request: &HttpRequest,
        sent: Sent,
        reply: HttpReply,
    ) -> Result<(), StoreError> {
        match sent {
            Sent::Capabilities => {
                if reply.status != 200 {
                    self.fail(format!(
                        "the server's metadata: {}",
                        wire::reply_message(reply.status, &reply.body)
                    ));
                    return Ok(());
                }
                match Capabilities::read(&reply.body) {
                    Ok(caps) => {
                        let mut tx = local.replica_begin(true).await?;
                        tx.put(ykey(&self.remote, &["k"]), caps.to_text().into_bytes());
                        tx.commit().await?;
                        self.caps = Some(caps);
                    }
                    Err(message) => {
                        self.sent = Some((request.clone(), Sent::Capabilities));
                        self.fail_attempt(format!("the server's metadata: {message}"), None);
                    }
                }
            }
            Sent::Refresh { type_name, id } => {
                let item = match reply.status {
                    200 => match wire::read(&reply.body) {
                        Ok(node)
                            if wire::text(&node, "resourceType") == Some(type_name.as_str())
                                && wire::text(&node, "id") == Some(id.as_str()) =>
                        {
                            let meta = wire::member(&node, "meta");
                            let version = meta
                                .and_then(|meta| wire::text(meta, "versionId"))
                                .map(ToString::to_string)
                                .or_else(|| reply.header("etag").map(wire::etag_version))
                                .or_else(|| {
                                    meta.and_then(|meta| wire::text(meta, "lastUpdated"))
                                        .map(ToString::to_string)
                                })
                                .unwrap_or_default();
                            Some(Item {
                                lossy: false,
                                type_name,
                                id,
                                version,
                                instant: None,
                                json: Some(crate::json::patch::to_text(&node)),
                            })
                        }
                        _ => {
                            self.summary.issues.push(Issue {
                                resource: Some(format!("{type_name}/{id}")),
                                message: String::from(
                                    "the server's answer to reading it is not that resource",
                                ),
                            });
                            None
                        }
                    },
                    // Gone, or not found where it was known to be: deleted there. A 404 for
                    // what the server never had is not a deletion.
                    status @ (404 | 410) => {
                        let known = status == 410 || {
                            let mut tx = local.replica_begin(false).await?;
                            local::base(&mut tx, &self.remote, &type_name, &id)
                                .await?
                                .is_some_and(|base| base.live)
                        };
                        known.then(|| Item {
                            lossy: false,
                            version: reply
                                .header("etag")
                                .map(wire::etag_version)
                                .unwrap_or_else(|| String::from("deleted")),
                            type_name,
                            id,
                            instant: None,
                            json: None,
                        })
                    }
                    status => {
                        self.summary.issues.push(Issue {
                            resource: Some(format!("{type_name}/{id}")),
                            message: wire::reply_message(status, &reply.body),
                        });
                        None
                    }
                };
                if let Some(item) = item {
                    let mut page = Page {
                        items: alloc::vec![item],
                        ..Page::default()
                    };
                    self.read_leniently(&mut page);
                    self.apply_page(local, &page, Filter::All).await?;
                }
            }
            Sent::Checkpoint => {
                if reply.status == 403 && self.without_history(local).await? {
                    // History is not this token's to read (a patient's token): the download
                    // goes on without it, its checkpoint from the dates of the replies.
                    let queue = self.download();
                    if let Phase::Pull(pull) = &mut self.phase {
                        pull.queue = queue;
                    }
                    return Ok(());
                }
                if reply.status != 200 {
                    self.fail(format!(
                        "the server's history: {}",
                        wire::reply_message(reply.status, &reply.body)
                    ));
                    return Ok(());
                }
                let page = match Page::read(&reply.body) {
                    Ok(page) => page,
                    Err(message) => {
                        self.sent = Some((request.clone(), Sent::Checkpoint));
                        self.fail_attempt(format!("the server's history: {message}"), None);
                        return Ok(());
                    }
                };
                // The newest write's instant, or the server's clock when it has none.
                let newest = newest_instant(&page.items)
                    .or_else(|| reply.header("date").and_then(wire::http_date_instant))
                    .unwrap_or_else(|| String::from("1970-01-01T00:00:00Z"));
                let queue = self.download();
                let scope = self.options.scope.key();
                if let Phase::Pull(pull) = &mut self.phase {
                    pull.queue = queue;
                    if pull.floor.is_none() {
                        // The first attempt at this download: where it began is kept.
                        let mut tx = local.replica_begin(true).await?;
                        tx.put(
                            ykey(&self.remote, &["d", &scope]),
                            newest.clone().into_bytes(),
                        );
                        tx.commit().await?;
                        pull.floor = Some(newest.clone());
                    }
                    pull.probe = Some(newest);
                }
            }
            Sent::Page {
                incremental,
                filter,
                first,
            } => {
                if reply.status == 403
                    && request.url.contains("/_history")
                    && self.without_history(local).await?
                {
                    // History is not this token's to read: the pull starts again with
                    // searches instead.
                    self.phase = Phase::Start;
                    self.round = self.round.saturating_sub(1);
                    return Ok(());
                }
                if reply.status != 200 {
                    self.forget_capabilities(local, reply.status).await?;
                    self.fail(format!(
                        "GET {}: {}",
                        request.url,
                        wire::reply_message(reply.status, &reply.body)
                    ));
                    return Ok(());
                }
                let mut page = match Page::read(&reply.body) {
                    Ok(page) => page,
                    Err(message) => {
                        // A reply cut short or garbled on the way: asked again.
                        self.sent = Some((
                            request.clone(),
                            Sent::Page {
                                incremental,
                                filter,
                                first,
                            },
                        ));
                        self.fail_attempt(format!("GET {}: {message}", request.url), None);
                        return Ok(());
                    }
                };
                if let Some(next) = &page.next {
                    if !next.starts_with(&format!("{}/", self.remote))
                        && !next.starts_with(&format!("{}?", self.remote))
                    {
                        self.fail(format!(
                            "GET {}: the next page's link ({next}) is not on the server",
                            request.url
                        ));
                        return Ok(());
                    }
                }
                // A server whose paging goes round in circles, or on and on with nothing.
                if let Phase::Pull(pull) = &mut self.phase {
                    if first {
                        pull.visited.clear();
                    }
                    pull.empty_pages = if page.items.is_empty() {
                        pull.empty_pages + 1
                    } else {
                        0
                    };
                    let looping = page
                        .next
                        .as_ref()
                        .is_some_and(|next| !pull.visited.insert(next.clone()));
                    if looping || (page.next.is_some() && pull.empty_pages >= MAX_EMPTY_PAGES) {
                        self.fail(format!(
                            "GET {}: the server's next links go round in circles or bring nothing",
                            request.url
                        ));
                        return Ok(());
                    }
                }
                for message in &page.unreadable {
                    self.summary.issues.push(Issue {
                        resource: None,
                        message: format!("GET {}: {message}", request.url),
                    });
                }
                if self.progress.total.is_none() && !incremental {
                    self.progress.total = page.total;
                }
                let scope = self.options.scope.key();
                if let Phase::Pull(pull) = &mut self.phase {
                    if first && pull.since.is_none() && pull.floor.is_none() {
                        // The first attempt at a download without history: where it began,
                        // kept before anything of it is applied.
                        if let Some(date) = reply.header("date").and_then(wire::http_date_instant) {
                            let mut tx = local.replica_begin(true).await?;
                            tx.put(
                                ykey(&self.remote, &["d", &scope]),
                                date.clone().into_bytes(),
                            );
                            tx.commit().await?;
                            pull.floor = Some(date);
                        }
                    }
                }
                self.read_leniently(&mut page);
                self.apply_page(local, &page, filter).await?;
                if let Phase::Pull(pull) = &mut self.phase {
                    if first {
                        if let Some(date) = reply.header("date").and_then(wire::http_date_instant) {
                            pull.dated += 1;
                            pull.earliest_date = match pull.earliest_date.take() {
                                Some(earlier) if instant_ms(&earlier) <= instant_ms(&date) => {
                                    Some(earlier)
                                }
                                _ => Some(date),
                            };
                        }
                    }
                    if incremental {
                        pull.newest = later(pull.newest.take(), newest_instant(&page.items));
                    }
                    pull.next = page.next.map(|url| (url, incremental, filter));
                }
            }
            Sent::Push {
                items,
                log_to,
                transaction,
            } => {
                if transaction && !(200..300).contains(&reply.status) {
                    // Which entry was refused, a batch tells: the same entries, each
                    // judged on its own.
                    let bodies = self.bodies(local, &items).await?;
                    let request = self.bundle(&items, &bodies, false);
                    let sent = Sent::Push {
                        items,
                        log_to,
                        transaction: false,
                    };
                    self.retry = Some((request, sent, 0));
                    return Ok(());
                }
                if !(200..300).contains(&reply.status) {
                    // A batch refused whole (not authorised, too large, redirected, not
                    // offered): nothing is known of its entries, which stay to be pushed.
                    self.forget_capabilities(local, reply.status).await?;
                    self.fail(format!(
                        "POST {}: {}",
                        request.url,
                        wire::reply_message(reply.status, &reply.body)
                    ));
                    return Ok(());
                }
                let outcomes = match wire::outcomes(&reply.body, items.len()) {
                    Ok(outcomes) => outcomes,
                    Err(message) => {
                        // Garbled on the way; the server may have stored it: a pull says,
                        // then the push is gathered again.
                        self.sent = Some((
                            request.clone(),
                            Sent::Push {
                                items,
                                log_to,
                                transaction,
                            },
                        ));
                        self.fail_attempt(format!("the push's reply: {message}"), None);
                        return Ok(());
                    }
                };
                self.take_outcomes(local, &items, &outcomes, log_to).await?;
            }
        }
        Ok(())
    }

    /// After a 403 to a history request: the server keeps its history from this token (as
    /// for a token held to a patient's compartment), so this sync and later ones do without
    /// it (kept with the capabilities). False when it did so already.
    async fn without_history<S: Store>(&mut self, local: &Service<S>) -> Result<bool, StoreError> {
        let Some(caps) = self.caps.as_mut() else {
            return Ok(false);
        };
        if !caps.history_system && caps.history_types.is_empty() {
            return Ok(false);
        }
        caps.history_system = false;
        caps.history_types.clear();
        let text = caps.to_text();
        let mut tx = local.replica_begin(true).await?;
        tx.put(ykey(&self.remote, &["k"]), text.into_bytes());
        tx.commit().await?;
        Ok(true)
    }

    /// After a refusal that may come from a server that changed what it offers (400, 404,
    /// 405, 501): the capabilities kept are forgotten, to be asked again at the next sync.
    async fn forget_capabilities<S: Store>(
        &mut self,
        local: &Service<S>,
        status: u16,
    ) -> Result<(), StoreError> {
        if matches!(status, 400 | 404 | 405 | 501) {
            let mut tx = local.replica_begin(true).await?;
            tx.delete(ykey(&self.remote, &["k"]));
            tx.commit().await?;
        }
        Ok(())
    }

    /// Reports a local change held from push because its remote version was read leniently.
    fn held_lossy(&mut self, key: &(String, String)) {
        if !self.held_reported.insert(key.clone()) {
            return;
        }
        self.summary.issues.push(Issue {
            resource: Some(format!("{}/{}", key.0, key.1)),
            message: String::from(
                "not pushed: its version on the server was read with strict: false and elements of it were left out here; a PUT of it would remove them there (it is pushed once the server's version reads in full)",
            ),
        });
    }

    /// With `strict` false, reads the resources of a page leniently: those that break the FHIR
    /// JSON rules are kept without the elements at fault; what was left out becomes a warning
    /// when the resource is stored.
    fn read_leniently(&mut self, page: &mut Page) {
        self.left_out.clear();
        if self.options.strict {
            return;
        }
        for item in &mut page.items {
            let Some(json) = &item.json else { continue };
            let Ok((object, Some(outcome))) =
                crate::json::fhir::parse_resource_lenient(json.as_bytes())
            else {
                continue;
            };
            item.json = Some(crate::json::write::write_resource(
                &object,
                crate::json::write::Style::Compact,
            ));
            item.lossy = true;
            let left_out: Vec<String> = outcome
                .issues
                .iter()
                .map(|issue| match issue.expression.first() {
                    Some(path) => format!("{path}: {}", issue.diagnostics),
                    None => issue.diagnostics.clone(),
                })
                .collect();
            self.left_out.insert(
                (item.type_name.clone(), item.id.clone()),
                format!(
                    "stored without what could not be read: {}",
                    left_out.join("; ")
                ),
            );
        }
    }

    /// Checks a page's resources, then applies those in scope in one store transaction
    /// (again, from the start, if another writer committed meanwhile).
    async fn apply_page<S: Store>(
        &mut self,
        local: &Service<S>,
        page: &Page,
        filter: Filter,
    ) -> Result<(), StoreError> {
        let mut checked = Vec::with_capacity(page.items.len());
        for item in &page.items {
            let key = (item.type_name.clone(), item.id.clone());
            let Phase::Pull(pull) = &mut self.phase else {
                break;
            };
            // History is newest first: an older version of what was applied is not.
            if !pull.seen.insert(key) {
                continue;
            }
            let object = match &item.json {
                Some(json) => match local.replica_check(&item.type_name, json.as_bytes()) {
                    Ok(object) => Some(object),
                    Err(message) => {
                        self.summary.issues.push(Issue {
                            resource: Some(format!("{}/{}", item.type_name, item.id)),
                            message: format!("not stored: {message}"),
                        });
                        continue;
                    }
                },
                None => None,
            };
            let in_scope = match filter {
                Filter::All => true,
                Filter::Known => false,
                Filter::Types => {
                    matches!(&self.options.scope, Scope::Types(types) if types.contains(&item.type_name))
                }
                Filter::Compartment => match (&self.options.scope, &object) {
                    (Scope::Patient(patient), Some(object)) => {
                        local.replica_in_compartment(object, "Patient", patient)
                    }
                    _ => false,
                },
            };
            checked.push((item, object, in_scope));
        }
        // What applying the page reads, asked for in one round (IndexedDB answers each
        // request in a round trip of its own otherwise).
        let mut ahead = Vec::with_capacity(checked.len() * 3);
        for (item, _, _) in &checked {
            let (type_name, id) = (item.type_name.as_str(), item.id.as_str());
            ahead.push(Service::<S>::replica_state_key(type_name, id));
            ahead.push(ykey(&self.remote, &["m", type_name, id]));
            ahead.push(ykey(&self.remote, &["x", type_name, id]));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = local.replica_begin(true).await?;
            tx.prefetch(&ahead).await?;
            let mut counts = (0, 0, 0);
            let mut warnings = Vec::new();
            for item in &page.items {
                // Made by a POST of this store whose reply never came (this version or an
                // older one of a history): what is here moves to the server's id, with the
                // version sent as the base, and what the server holds now is read by id and
                // merges with it.
                if let Some((local_id, sent)) =
                    create::made_by_pending(&mut tx, &self.remote, item).await?
                {
                    self.refresh
                        .insert((item.type_name.clone(), item.id.clone()));
                    create::adopt(
                        local,
                        &mut tx,
                        &self.remote,
                        &item.type_name,
                        &local_id,
                        &item.id,
                        sent,
                        "",
                    )
                    .await?;
                    let dependents: Vec<(String, String)> = local::retries(&mut tx, &self.remote)
                        .await?
                        .into_iter()
                        .map(|(key, _)| key)
                        .collect();
                    create::point_references(
                        local,
                        &mut tx,
                        &[(item.type_name.clone(), local_id, item.id.clone())],
                        &dependents,
                    )
                    .await?;
                }
            }
            for (item, object, in_scope) in &checked {
                if !in_scope {
                    let known = local::base(&mut tx, &self.remote, &item.type_name, &item.id)
                        .await?
                        .is_some()
                        || Service::<S>::replica_state(&mut tx, &item.type_name, &item.id)
                            .await?
                            .is_some();
                    if !known {
                        continue;
                    }
                }
                let applied =
                    local::apply(local, &mut tx, &self.remote, item, object.clone()).await?;
                match applied {
                    Applied::Unchanged => {}
                    Applied::Stored => counts.0 += 1,
                    Applied::Merged => counts.1 += 1,
                    Applied::Conflict => counts.2 += 1,
                }
                let key = (item.type_name.clone(), item.id.clone());
                if let (false, Some(message)) = (
                    matches!(applied, Applied::Unchanged),
                    self.left_out.get(&key),
                ) {
                    warnings.push(Issue {
                        resource: Some(format!("{}/{}", key.0, key.1)),
                        message: message.clone(),
                    });
                }
            }
            match tx.commit().await {
                Ok(()) => {
                    self.summary.warnings.append(&mut warnings);
                    self.summary.pulled += counts.0;
                    self.summary.merged += counts.1;
                    self.summary.conflicts += counts.2;
                    self.progress.done += page.items.len();
                    return Ok(());
                }
                Err(err) if err.conflict && attempt < 3 => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// The local changes to push next: at most `push_size` resources from the retry set and
    /// the write log, the log position examined, and each one's JSON (`None`: a deletion).
    /// Resources pushed already in this round wait for the next one (after a pull); retry
    /// entries with nothing left to push are dropped.
    async fn gather<S: Store>(
        &mut self,
        local: &Service<S>,
    ) -> Result<(Vec<Pushed>, u64, Vec<Option<String>>), StoreError> {
        let remote = self.remote.clone();
        let mut tx = local.replica_begin(false).await?;
        let mut items = Vec::new();
        let mut bodies = Vec::new();
        let mut considered: BTreeSet<(String, String)> = BTreeSet::new();
        let (mut retry_drop, mut retry_add) = (Vec::new(), Vec::new());
        // Changes that refer to new resources the server has not given ids yet.
        let mut deferred: Vec<(Pushed, Option<String>)> = Vec::new();
        for (key, _) in local::retries(&mut tx, &remote).await? {
            if items.len() >= self.options.push_size {
                break;
            }
            considered.insert(key.clone());
            if self.attempted.contains(&key) || !self.in_scope(&key.0) {
                continue;
            }
            match self.pushable(local, &mut tx, &key.0, &key.1).await? {
                Pushable::Send(pushed) => {
                    self.queue(
                        local,
                        &mut tx,
                        pushed,
                        &mut items,
                        &mut bodies,
                        &mut deferred,
                    )
                    .await?;
                }
                Pushable::Nothing => retry_drop.push(key),
                Pushable::AfterPull => {
                    self.refresh.insert(key);
                    self.again = true;
                }
                Pushable::Lossy => self.held_lossy(&key),
            }
        }
        let cursor = local::number(&mut tx, &ykey(&remote, &["s"])).await?;
        let mut log_to = cursor;
        'log: while items.len() < self.options.push_size {
            let entries = Service::<S>::replica_log(&mut tx, log_to, 256).await?;
            if entries.is_empty() {
                break;
            }
            for (seq, type_name, id, _) in entries {
                if items.len() >= self.options.push_size {
                    break 'log;
                }
                log_to = seq;
                let key = (type_name, id);
                if !considered.insert(key.clone()) {
                    continue;
                }
                if !self.in_scope(&key.0) {
                    // Another scope's to push: kept waiting, not passed over.
                    retry_add.push(key);
                    continue;
                }
                if self.attempted.contains(&key) {
                    // Changed again since it was pushed in this round: next round.
                    retry_add.push(key);
                    self.again = true;
                    continue;
                }
                match self.pushable(local, &mut tx, &key.0, &key.1).await? {
                    Pushable::Send(pushed) => {
                        self.queue(
                            local,
                            &mut tx,
                            pushed,
                            &mut items,
                            &mut bodies,
                            &mut deferred,
                        )
                        .await?;
                    }
                    Pushable::Nothing => {}
                    Pushable::AfterPull => {
                        self.refresh.insert(key.clone());
                        retry_add.push(key);
                        self.again = true;
                    }
                    Pushable::Lossy => {
                        // Kept to push once the remote version reads in full.
                        self.held_lossy(&key);
                        retry_add.push(key);
                    }
                }
            }
        }
        // Changes that refer to resources moved to ids the server gave them: rewritten here
        // before they are sent (a POST already sent keeps what it sent).
        let mut rewrites: Vec<(usize, Vec<create::Moved>)> = Vec::new();
        for (index, (item, body)) in items.iter().zip(&bodies).enumerate() {
            let Some(json) = body else { continue };
            if item.create.is_some()
                && create::pinned(&mut tx, &remote, &item.type_name, &item.id)
                    .await?
                    .is_some()
            {
                continue;
            }
            let moves = create::moved_targets(&mut tx, &remote, json, local.base()).await?;
            if !moves.is_empty() {
                rewrites.push((index, moves));
            }
        }
        drop(tx);
        if items.is_empty() {
            // Nothing else to send: new resources that refer to one another (or to one this
            // sync does not push) go as they are, and are pushed again once rewritten.
            for (pushed, body) in deferred.drain(..) {
                items.push(pushed);
                bodies.push(body);
            }
        }
        for (pushed, _) in &deferred {
            retry_add.push((pushed.type_name.clone(), pushed.id.clone()));
            self.again = true;
        }
        let creates = items
            .iter()
            .any(|item| item.create.is_some() && !item.deleted);
        if !retry_drop.is_empty() || !retry_add.is_empty() || creates || !rewrites.is_empty() {
            let mut tx = local.replica_begin(true).await?;
            for (index, moves) in &rewrites {
                let Some(item) = items.get_mut(*index) else {
                    continue;
                };
                let key = (item.type_name.clone(), item.id.clone());
                create::point_references(local, &mut tx, moves, core::slice::from_ref(&key))
                    .await?;
                if let Some(state) =
                    Service::<S>::replica_state(&mut tx, &item.type_name, &item.id).await?
                {
                    item.local = state.version;
                }
                if let Some(body) = bodies.get_mut(*index) {
                    *body = Self::body(local, &mut tx, item).await?;
                }
            }
            for item in items
                .iter()
                .filter(|item| item.create.is_some() && !item.deleted)
            {
                create::pin(&mut tx, &remote, &item.type_name, &item.id, item.local);
            }
            for (type_name, id) in &retry_drop {
                tx.delete(ykey(&remote, &["q", type_name, id]));
            }
            for (type_name, id) in &retry_add {
                tx.put(ykey(&remote, &["q", type_name, id]), Vec::new());
            }
            tx.commit().await?;
        }
        for item in &items {
            self.attempted
                .insert((item.type_name.clone(), item.id.clone()));
        }
        if items.is_empty() && log_to == cursor {
            return Ok((items, 0, bodies));
        }
        self.progress.total = Some(self.progress.done + items.len());
        Ok((items, log_to, bodies))
    }

    /// Adds `pushed` and its JSON to the push, or to `deferred` when it refers to a new
    /// resource still waiting for the server to give it an id.
    async fn queue<S: Store, T: Transaction>(
        &self,
        local: &Service<S>,
        tx: &mut T,
        pushed: Pushed,
        items: &mut Vec<Pushed>,
        bodies: &mut Vec<Option<String>>,
        deferred: &mut Vec<(Pushed, Option<String>)>,
    ) -> Result<(), StoreError> {
        let body = Self::body(local, tx, &pushed).await?;
        if self
            .waits_for_ids(local, tx, &pushed, body.as_deref())
            .await?
        {
            deferred.push((pushed, body));
        } else {
            bodies.push(body);
            items.push(pushed);
        }
        Ok(())
    }

    /// Whether `pushed` (whose JSON is `body`) refers to a new resource that waits for the
    /// server to give it an id: then it waits too, to be sent with the reference rewritten.
    async fn waits_for_ids<S: Store, T: Transaction>(
        &self,
        local: &Service<S>,
        tx: &mut T,
        pushed: &Pushed,
        body: Option<&str>,
    ) -> Result<bool, StoreError> {
        let Some(json) = body else {
            return Ok(false);
        };
        let update_create = self
            .caps
            .as_ref()
            .map(|caps| caps.update_create.as_slice())
            .unwrap_or_default();
        for (type_name, id) in create::references(json, local.base()) {
            if (type_name.as_str(), id.as_str()) == (pushed.type_name.as_str(), pushed.id.as_str())
            {
                continue;
            }
            if create::awaits_id::<S, _>(tx, &self.remote, update_create, &type_name, &id).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether local changes of `type_name` are this sync's to push: those of the scope's
    /// types (a patient's scope takes any, those outside the compartment known by id).
    fn in_scope(&self, type_name: &str) -> bool {
        match &self.options.scope {
            Scope::Patient(_) => true,
            Scope::Types(types) => types.iter().any(|t| t == type_name),
            Scope::Searches(searches) => searches
                .iter()
                .any(|search| search.split(['?', '/']).next() == Some(type_name)),
        }
    }

    async fn body<S: Store, T: Transaction>(
        local: &Service<S>,
        tx: &mut T,
        pushed: &Pushed,
    ) -> Result<Option<String>, StoreError> {
        if pushed.deleted {
            return Ok(None);
        }
        let json =
            Service::<S>::replica_version(tx, &pushed.type_name, &pushed.id, pushed.local).await?;
        Ok(match (json, &pushed.create) {
            (Some(json), Some(_)) => Some(create::marked_json(
                local,
                &json,
                &pushed.type_name,
                &pushed.id,
                None,
            )),
            (json, _) => json,
        })
    }

    /// What to push of `type_name/id`, if anything.
    async fn pushable<S: Store, T: Transaction>(
        &self,
        local: &Service<S>,
        tx: &mut T,
        type_name: &str,
        id: &str,
    ) -> Result<Pushable, StoreError> {
        let remote = &self.remote;
        let current = Service::<S>::replica_state(tx, type_name, id).await?;
        let base = local::base(tx, remote, type_name, id).await?;
        let Some(current) = current else {
            return Ok(Pushable::Nothing);
        };
        // A new resource POSTed before, whose reply may never have come: the version sent then.
        let pinned = create::pinned(tx, remote, type_name, id).await?;
        let unanswered_then_deleted = base.is_none() && current.deleted && pinned.is_some();
        if !local::changed(Some(current), base.as_ref()) && !unanswered_then_deleted {
            return Ok(Pushable::Nothing);
        }
        if local::conflict(tx, remote, type_name, id).await?.is_some() {
            return Ok(Pushable::Nothing);
        }
        if let Some((version, _)) = local::refusal(tx, remote, type_name, id).await? {
            if version == current.version {
                return Ok(Pushable::Nothing);
            }
        }
        if !current.deleted && base.as_ref().is_some_and(|base| base.live && base.lossy) {
            return Ok(Pushable::Lossy);
        }
        let never_there = base.is_none();
        let live_base = base.filter(|base| base.live);
        if current.deleted && live_base.is_none() {
            if unanswered_then_deleted {
                // Deleted here after a POST whose fate is unknown: deleted by its mark there.
                return Ok(Pushable::Send(Pushed {
                    type_name: type_name.to_string(),
                    id: id.to_string(),
                    local: current.version,
                    deleted: true,
                    if_match: None,
                    create: Some(create::if_none_exist(local, type_name, id)),
                }));
            }
            // Created and deleted here, or deleted on both sides: nothing to send.
            return Ok(Pushable::Nothing);
        }
        if live_base
            .as_ref()
            .is_some_and(|base| base.remote.is_empty())
        {
            // The server did not say which version the last push made: without it there is
            // no If-Match, so a pull learns it first.
            return Ok(Pushable::AfterPull);
        }
        let assigns_ids = !self
            .caps
            .as_ref()
            .is_some_and(|caps| caps.update_create.iter().any(|t| t == type_name));
        let create = (never_there && !current.deleted && (assigns_ids || pinned.is_some()))
            .then(|| create::if_none_exist(local, type_name, id));
        // The same version every time until the server has answered, so that what it made
        // of the first POST that reached it is known.
        let sent = match (&create, pinned) {
            (Some(_), Some(version)) => version,
            _ => current.version,
        };
        Ok(Pushable::Send(Pushed {
            type_name: type_name.to_string(),
            id: id.to_string(),
            local: sent,
            deleted: current.deleted,
            if_match: live_base.map(|base| base.remote),
            create,
        }))
    }

    async fn bodies<S: Store>(
        &self,
        local: &Service<S>,
        items: &[Pushed],
    ) -> Result<Vec<Option<String>>, StoreError> {
        let mut tx = local.replica_begin(false).await?;
        let mut bodies = Vec::with_capacity(items.len());
        for item in items {
            bodies.push(Self::body(local, &mut tx, item).await?);
        }
        Ok(bodies)
    }

    /// The push Bundle. The remote versions are read when the reply is taken, so the bases
    /// here are those of the moment it is built.
    fn bundle(
        &self,
        items: &[Pushed],
        bodies: &[Option<String>],
        transaction: bool,
    ) -> HttpRequest {
        let mut entries = Vec::with_capacity(items.len());
        for (item, body) in items.iter().zip(bodies) {
            let url = format!("{}/{}", item.type_name, item.id);
            let if_match = item
                .if_match
                .as_deref()
                .map(|rv| {
                    format!(
                        r#","ifMatch":{}"#,
                        local::json_string(&format!("W/\"{rv}\""))
                    )
                })
                .unwrap_or_default();
            entries.push(match body {
                Some(json) if item.create.is_some() => format!(
                    r#"{{"resource":{},"request":{{"method":"POST","url":{},"ifNoneExist":{}}}}}"#,
                    json,
                    local::json_string(&item.type_name),
                    local::json_string(item.create.as_deref().unwrap_or_default()),
                ),
                Some(json) if !item.deleted => format!(
                    r#"{{"fullUrl":{},"resource":{},"request":{{"method":"PUT","url":{}{if_match}}}}}"#,
                    local::json_string(&format!("{}/{url}", self.remote)),
                    strip_meta(json),
                    local::json_string(&url),
                ),
                _ => format!(
                    r#"{{"request":{{"method":"DELETE","url":{}{if_match}}}}}"#,
                    local::json_string(&match &item.create {
                        Some(query) => format!("{}?{query}", item.type_name),
                        None => url,
                    }),
                ),
            });
        }
        let kind = if transaction { "transaction" } else { "batch" };
        HttpRequest {
            method: String::from("POST"),
            url: self.remote.clone(),
            headers: alloc::vec![
                (
                    String::from("Accept"),
                    String::from("application/fhir+json")
                ),
                (
                    String::from("Content-Type"),
                    String::from("application/fhir+json")
                ),
            ],
            body: format!(
                r#"{{"resourceType":"Bundle","type":"{kind}","entry":[{}]}}"#,
                entries.join(",")
            )
            .into_bytes(),
        }
    }

    async fn take_outcomes<S: Store>(
        &mut self,
        local: &Service<S>,
        items: &[Pushed],
        outcomes: &[wire::Outcome],
        log_to: u64,
    ) -> Result<(), StoreError> {
        let remote = self.remote.clone();
        let mut tx = local.replica_begin(true).await?;
        let (mut pushed, mut stale) = (0, false);
        // New resources the server gave ids of its own: (type, local id, server id).
        let mut moved: Vec<(String, String, String)> = Vec::new();
        for (item, outcome) in items.iter().zip(outcomes) {
            let (type_name, id) = (item.type_name.as_str(), item.id.as_str());
            let retry_key = ykey(&remote, &["q", type_name, id]);
            let resource = format!("{type_name}/{id}");
            let done_deleted = item.deleted && matches!(outcome.status, 404 | 410);
            let created =
                (200..300).contains(&outcome.status) && item.create.is_some() && !item.deleted;
            if created {
                let Some(new_id) = outcome
                    .location
                    .as_deref()
                    .and_then(|location| create::location_id(location, type_name))
                else {
                    // Its POST is sent again, and If-None-Exist finds what this one made.
                    tx.put(retry_key, Vec::new());
                    self.summary.issues.push(Issue {
                        resource: Some(resource),
                        message: String::from(
                            "the server created it without saying under which id; it is asked again",
                        ),
                    });
                    stale = true;
                    continue;
                };
                // What the server answered must be this resource: a valid id, carrying its
                // mark, and not a resource held here under another identity (a server that
                // does not search by the mark matches whatever it has).
                let held_here = match Service::<S>::replica_state(&mut tx, type_name, &new_id)
                    .await?
                {
                    Some(state) if !state.deleted => {
                        Service::<S>::replica_version(&mut tx, type_name, &new_id, state.version)
                            .await?
                    }
                    _ => None,
                };
                let foreign = !crate::rest::is_valid_id(&new_id)
                    || outcome
                        .resource
                        .as_deref()
                        .is_some_and(|json| !create::marked_as(json, id))
                    || held_here
                        .as_deref()
                        .is_some_and(|json| !create::marked_as(json, id));
                if foreign && new_id != id {
                    let message = format!(
                        "the server answered its POST with {type_name}/{new_id}, which is not it (the server seems not to search by the mark in If-None-Exist)"
                    );
                    tx.put(
                        ykey(&remote, &["e", type_name, id]),
                        format!("{}\0{message}", item.local).into_bytes(),
                    );
                    tx.delete(retry_key);
                    create::unpin(&mut tx, &remote, type_name, id);
                    self.summary.issues.push(Issue {
                        resource: Some(resource),
                        message: format!("the server refused it: {message}"),
                    });
                    continue;
                }
                if new_id != id {
                    // 201: made now of the version sent. Otherwise an earlier POST made it,
                    // and others may have changed it since: the next pull reads it and
                    // merges, with the version sent as the base.
                    let made_now = outcome.status == 201;
                    create::adopt(
                        local,
                        &mut tx,
                        &remote,
                        type_name,
                        id,
                        &new_id,
                        item.local,
                        if made_now {
                            outcome.version.as_deref().unwrap_or_default()
                        } else {
                            ""
                        },
                    )
                    .await?;
                    if !made_now {
                        self.refresh.insert((type_name.to_string(), new_id.clone()));
                        stale = true;
                    }
                    moved.push((type_name.to_string(), id.to_string(), new_id));
                    pushed += 1;
                    continue;
                }
            }
            if (200..300).contains(&outcome.status) || done_deleted {
                local::put_base(
                    &mut tx,
                    &remote,
                    type_name,
                    id,
                    &Base {
                        local: item.local,
                        live: !item.deleted,
                        remote: outcome.version.clone().unwrap_or_default(),
                        lossy: false,
                    },
                );
                tx.delete(retry_key);
                tx.delete(ykey(&remote, &["e", type_name, id]));
                create::unpin(&mut tx, &remote, type_name, id);
                pushed += 1;
            } else if item.create.is_none()
                && (matches!(outcome.status, 409 | 412)
                    || (outcome.status == 404 && item.if_match.is_some()))
                && self.stale.insert((item.type_name.clone(), item.id.clone()))
            {
                // The remote changed since the base: the next pull merges (reading it by id
                // too, should its change be older than the checkpoint), then it is pushed.
                // Marked `r` in the retry set, so a later sync reads it by id as well.
                tx.put(retry_key, b"r".to_vec());
                self.refresh
                    .insert((item.type_name.clone(), item.id.clone()));
                stale = true;
            } else if (400..500).contains(&outcome.status) {
                // Refused (a 404 to creating with this id, or a 409/412 again after the
                // resource was read back: not staleness but a rule of the server).
                tx.put(
                    ykey(&remote, &["e", type_name, id]),
                    format!("{}\0{}", item.local, outcome.message).into_bytes(),
                );
                tx.delete(retry_key);
                // Not made: an edit sends its own version.
                create::unpin(&mut tx, &remote, type_name, id);
                self.summary.issues.push(Issue {
                    resource: Some(resource),
                    message: format!(
                        "the server refused it (status {}): {}",
                        outcome.status, outcome.message
                    ),
                });
            } else {
                tx.put(retry_key, Vec::new());
                self.summary.issues.push(Issue {
                    resource: Some(resource),
                    message: format!(
                        "not pushed yet (status {}): {}",
                        outcome.status, outcome.message
                    ),
                });
                stale = true;
            }
        }
        if !moved.is_empty() {
            // What may refer to them: this push, the changes waiting, and those not examined.
            let mut dependents: BTreeSet<(String, String)> = items
                .iter()
                .map(|item| (item.type_name.clone(), item.id.clone()))
                .collect();
            dependents.extend(moved.iter().map(|(t, _, new)| (t.clone(), new.clone())));
            // Changes not examined yet are rewritten when they are gathered.
            dependents.extend(
                local::retries(&mut tx, &remote)
                    .await?
                    .into_iter()
                    .map(|(key, _)| key),
            );
            let dependents: Vec<(String, String)> = dependents.into_iter().collect();
            create::point_references(local, &mut tx, &moved, &dependents).await?;
        }
        if log_to > 0 {
            tx.put(ykey(&remote, &["s"]), format!("{log_to}").into_bytes());
        }
        tx.commit().await?;
        self.summary.pushed += pushed;
        self.progress.done += items.len();
        self.again |= stale;
        Ok(())
    }

    /// The local changes `remote` has not received yet, as `(type, id)`: resources written or
    /// deleted here since the state both sides last agreed on (conflicts included).
    pub async fn pending<S: Store>(
        local: &Service<S>,
        remote: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let remote = remote.trim_end_matches('/');
        let mut tx = local.replica_begin(false).await?;
        let mut found = Vec::new();
        for (type_name, id) in local::unpushed::<S, _>(&mut tx, remote).await? {
            let current = Service::<S>::replica_state(&mut tx, &type_name, &id).await?;
            let base = local::base(&mut tx, remote, &type_name, &id).await?;
            let new_and_deleted = base.is_none()
                && current.is_some_and(|c| c.deleted)
                && create::pinned(&mut tx, remote, &type_name, &id)
                    .await?
                    .is_none();
            if local::changed(current, base.as_ref()) && !new_and_deleted {
                found.push((type_name, id));
            }
        }
        Ok(found)
    }

    /// The conflicts recorded for `remote`.
    pub async fn conflicts<S: Store>(
        local: &Service<S>,
        remote: &str,
    ) -> Result<Vec<Conflict>, StoreError> {
        let mut tx = local.replica_begin(false).await?;
        local::conflicts::<S, _>(&mut tx, remote.trim_end_matches('/')).await
    }

    /// Resolves the conflict on `type_name/id`: `Ok(Ok(false))` when there is none,
    /// `Ok(Err(message))` when the resolution does not validate.
    pub async fn resolve<S: Store>(
        local: &Service<S>,
        remote: &str,
        type_name: &str,
        id: &str,
        resolution: &Resolution,
    ) -> Result<Result<bool, String>, StoreError> {
        let remote = remote.trim_end_matches('/');
        let mut tx = local.replica_begin(true).await?;
        let result = local::resolve(local, &mut tx, remote, type_name, id, resolution).await?;
        if matches!(result, Ok(true)) {
            tx.commit().await?;
        }
        Ok(result)
    }
}

fn with_count(remote: &str, search: &str, count: usize) -> String {
    let joiner = if search.contains('?') { '&' } else { '?' };
    if search.contains("_count=") {
        format!("{remote}/{search}")
    } else {
        format!("{remote}/{search}{joiner}_count={count}")
    }
}

/// A resource's JSON without the version and instant its local store gave it.
fn strip_meta(json: &str) -> String {
    match wire::read(json.as_bytes()) {
        Ok(node) => crate::json::patch::to_text(&merge::without_server_meta(node)),
        Err(_) => json.to_string(),
    }
}

fn instant_ms(instant: &str) -> i64 {
    crate::search::index::date_text_range(instant).map_or(i64::MIN, |(low, _)| low)
}

fn newest_instant(items: &[Item]) -> Option<String> {
    items
        .iter()
        .filter_map(|item| item.instant.as_deref())
        .max_by_key(|instant| instant_ms(instant))
        .map(ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::earlier_by;

    #[test]
    fn checkpoints_move_back_across_days_months_and_years() {
        assert_eq!(
            earlier_by("2026-03-01T00:01:00Z", 120_000),
            "2026-02-28T23:59:00.000Z"
        );
        assert_eq!(
            earlier_by("2024-03-01T00:00:00.500+00:00", 1_000),
            "2024-02-29T23:59:59.500Z"
        );
        assert_eq!(
            earlier_by("2026-01-01T00:00:00Z", 1),
            "2025-12-31T23:59:59.999Z"
        );
        assert_eq!(
            earlier_by("2026-06-15T12:00:00+02:00", 0),
            "2026-06-15T10:00:00.000Z"
        );
        assert_eq!(earlier_by("garbage", 5), "garbage");
    }
}
