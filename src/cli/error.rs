//! How the binary words what stopped a command: an error and its causes on
//! one line, each cause once, and the missing-configuration message that
//! says what to do next.

use std::path::Path;

/// Where the configuration path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// `--config FILE`.
    Flag,
    /// `$WARDEN_CONFIG`.
    Env,
    /// Neither: `./warden.yaml`.
    Default,
}

/// The error and its causes, outermost first, joined by `: `: what `main`
/// prints after `error: `. An error whose message already ends with its
/// cause's must not also return that cause as its source, or the cause is
/// printed twice (the tests of the binary check every top-level error).
pub fn render(error: &anyhow::Error) -> String {
    warden::format::error_chain(error.as_ref())
}

/// No configuration file where one was looked for: where, how to name
/// another, and how to start.
pub fn missing_config(path: &Path, origin: ConfigOrigin) -> anyhow::Error {
    const START: &str = "Start with `warden init --warehouse URL`, or try `warden demo`.";
    let shown = shown_path(path);
    match origin {
        ConfigOrigin::Default => anyhow::anyhow!(
            "no warden.yaml here (looked at {shown}; set --config or $WARDEN_CONFIG). {START}"
        ),
        ConfigOrigin::Flag => {
            anyhow::anyhow!("no configuration file at {shown} (named by --config). {START}")
        }
        ConfigOrigin::Env => {
            anyhow::anyhow!("no configuration file at {shown} (named by $WARDEN_CONFIG). {START}")
        }
    }
}

/// A relative path as a shell user reads it: `./warden.yaml`.
fn shown_path(path: &Path) -> String {
    let text = path.display().to_string();
    if path.is_relative() && !text.starts_with('.') {
        format!("./{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn causes_follow_the_message_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = Err::<(), _>(io)
            .context("cannot read x.yaml")
            .context("invalid configuration x.yaml")
            .unwrap_err();
        assert_eq!(
            render(&e),
            "invalid configuration x.yaml: cannot read x.yaml: gone"
        );
    }

    #[test]
    fn an_unreadable_config_names_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let e = anyhow::Error::new(warden::config::load(dir.path()).unwrap_err());
        let text = render(&e);
        let cause = text.rsplit(": ").next().unwrap();
        assert_eq!(text.matches(cause).count(), 1, "{text}");
    }

    #[test]
    fn the_missing_config_message_shows_the_path_looked_at() {
        assert_eq!(
            missing_config(Path::new("warden.yaml"), ConfigOrigin::Default).to_string(),
            "no warden.yaml here (looked at ./warden.yaml; set --config or $WARDEN_CONFIG). \
             Start with `warden init --warehouse URL`, or try `warden demo`."
        );
        assert!(
            missing_config(Path::new("/etc/warden/w.yaml"), ConfigOrigin::Env)
                .to_string()
                .starts_with(
                    "no configuration file at /etc/warden/w.yaml (named by $WARDEN_CONFIG)"
                )
        );
        assert!(
            missing_config(Path::new("conf/w.yaml"), ConfigOrigin::Flag)
                .to_string()
                .starts_with("no configuration file at ./conf/w.yaml (named by --config)")
        );
    }
}
