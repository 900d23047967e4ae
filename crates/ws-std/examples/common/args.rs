//! The command line of the client examples: `[URL] [COUNT] [-v]`.

/// What the command line asked for.
pub struct Args {
    /// The server's URL, if one was given.
    pub url: Option<String>,
    /// How many messages to send.
    pub count: usize,
    /// `-v`: debug log lines.
    pub verbose: bool,
}

/// Parses `[URL] [COUNT] [-v]` in any order; COUNT defaults to `count`.
pub fn parse(count: usize) -> Args {
    let mut args = Args {
        url: None,
        count,
        verbose: false,
    };
    for a in std::env::args().skip(1) {
        match (a.as_str(), a.parse::<usize>()) {
            ("-v", _) => args.verbose = true,
            (_, Ok(n)) => args.count = n,
            (u, Err(_)) => args.url = Some(u.to_string()),
        }
    }
    args
}
