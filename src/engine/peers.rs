//! Numbers over every engine. Each engine owns some partitions, so each
//! holds a share of the numbers; `leadflow stats --peers` asks every
//! engine's API for its share (`GET /api/v1/partial`) and merges them
//! (`projector::partial`), which gives what one engine owning every
//! partition would show. Peers are listed (`http://leadflow-0:8080,…`) or
//! found behind a name that resolves to every engine, such as a
//! Kubernetes headless Service (`dns:leadflow-headless:8080`).

use crate::projector::partial::Partial;
use std::io::Read;
use std::net::ToSocketAddrs;
use std::time::Duration;

/// The largest partial accepted from a peer.
const PARTIAL_BYTES_MAX: u64 = 1 << 30;

/// Errors of asking peers; each names the peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// A `dns:` name did not resolve. Check the name and port.
    #[error("cannot resolve {spec}: {detail}")]
    Resolve { spec: String, detail: String },
    /// A peer did not answer, or answered with an error status (a wrong
    /// read token is 401). The whole answer would be missing its share, so
    /// nothing is printed.
    #[error("peer {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// A peer answered something that is not a partial of this version.
    #[error("peer {url}: {detail}")]
    Decode { url: String, detail: String },
}

/// The peers' base URLs, from a comma-separated list of URLs and
/// `dns:HOST:PORT` names (each resolving to every address behind it).
pub fn resolve(spec: &str) -> Result<Vec<String>, PeerError> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.strip_prefix("dns:") {
            Some(name) => {
                let addrs = name.to_socket_addrs().map_err(|e| PeerError::Resolve {
                    spec: part.to_string(),
                    detail: e.to_string(),
                })?;
                let mut found: Vec<String> = addrs.map(|a| format!("http://{a}")).collect();
                if found.is_empty() {
                    return Err(PeerError::Resolve {
                        spec: part.to_string(),
                        detail: "no address".into(),
                    });
                }
                found.sort();
                out.extend(found);
            }
            None => out.push(part.trim_end_matches('/').to_string()),
        }
    }
    out.dedup();
    Ok(out)
}

/// Every peer's partial, merged. Fails if any peer fails: a sum missing a
/// share would look like a real number.
pub fn merged(peers: &[String], read_token: Option<&str>) -> Result<Partial, PeerError> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut all = Partial::default();
    for url in peers {
        let mut request = agent.get(&format!("{url}/api/v1/partial"));
        if let Some(t) = read_token {
            request = request.set("Authorization", &format!("Bearer {t}"));
        }
        let response = request.call().map_err(|e| PeerError::Unreachable {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(PARTIAL_BYTES_MAX)
            .read_to_end(&mut bytes)
            .map_err(|e| PeerError::Unreachable {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let partial = Partial::from_bytes(&bytes).map_err(|detail| PeerError::Decode {
            url: url.clone(),
            detail,
        })?;
        all.merge(&partial);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_listed_or_resolved_from_one_name() {
        assert_eq!(
            resolve("http://a:8080/, http://b:8080").unwrap(),
            vec!["http://a:8080", "http://b:8080"]
        );
        assert_eq!(
            resolve("dns:127.0.0.1:9").unwrap(),
            vec!["http://127.0.0.1:9"]
        );
        assert!(matches!(
            resolve("dns:no-such-host.invalid:80"),
            Err(PeerError::Resolve { .. })
        ));
    }
}
