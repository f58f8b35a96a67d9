//! Request paths and query parameters (pure).
//!
//! Path layout per "API concepts: Resource URIs": `/api/v1/...` for the core group,
//! `/apis/<group>/<version>/...` otherwise, then `[namespaces/<ns>/]<resource>[/<name>[/<sub>]]`.
//! As in apiserver's `RequestInfoFactory`, `namespaces/<name>/status` and `/finalize` are
//! subresources of the Namespace object, not a namespaced resource called `status`.

use std::collections::HashMap;

use super::error::ApiError;
use super::faults::Verb;

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    GroupVersion(String, String),
    /// `/openapi/v3` (None) or `/openapi/v3/<gv path>` (Some((group, version))).
    OpenApiV3(Option<(String, String)>),
    OpenApi,
    Resource(ResourcePath),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest): (&str, &str, &[&str]) = match parts.as_slice() {
        ["version"] => return Some(Target::Version),
        ["healthz" | "livez" | "readyz", ..] => return Some(Target::Health),
        ["openapi", "v3"] => return Some(Target::OpenApiV3(None)),
        ["openapi", "v3", "api", v] => {
            return Some(Target::OpenApiV3(Some((String::new(), (*v).into()))));
        }
        ["openapi", "v3", "apis", g, v] => {
            return Some(Target::OpenApiV3(Some(((*g).into(), (*v).into()))));
        }
        ["openapi", ..] => return Some(Target::OpenApi),
        ["api"] => return Some(Target::CoreVersions),
        ["api", v] => return Some(Target::GroupVersion(String::new(), (*v).into())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis"] => return Some(Target::Groups),
        ["apis", g] => return Some(Target::Group((*g).into())),
        ["apis", g, v] => return Some(Target::GroupVersion((*g).into(), (*v).into())),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let mut rp = ResourcePath {
        group: group.into(),
        version: version.into(),
        ..Default::default()
    };
    let rest = match rest {
        ["namespaces", ns, next, tail @ ..] if *next != "status" && *next != "finalize" => {
            rp.namespace = Some((*ns).into());
            let mut v = vec![*next];
            v.extend_from_slice(tail);
            v
        }
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [res] => rp.plural = (*res).into(),
        [res, name] => {
            rp.plural = (*res).into();
            rp.name = Some((*name).into());
        }
        [res, name, sub] => {
            rp.plural = (*res).into();
            rp.name = Some((*name).into());
            rp.subresource = Some((*sub).into());
        }
        _ => return None,
    }
    Some(Target::Resource(rp))
}

/// The verb of a resource request (`RequestInfo.Verb`).
pub fn verb(method: &http::Method, rp: &ResourcePath, query: &Query) -> Result<Verb, ApiError> {
    use http::Method;
    Ok(match (method, rp.name.is_some()) {
        (&Method::GET, _) if query.flag("watch") => Verb::Watch,
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, false) => Verb::Create,
        // POST to a named object's subresource (pods/binding).
        (&Method::POST, true) if rp.subresource.is_some() => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        (m, _) => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({m})"
            )));
        }
    })
}

/// Decoded query parameters.
#[derive(Debug, Clone, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// `true`/`1` are true (Go's strconv.ParseBool accepts both).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True" | "t"))
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(
        group: &str,
        version: &str,
        ns: Option<&str>,
        plural: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Target {
        Target::Resource(ResourcePath {
            group: group.into(),
            version: version.into(),
            namespace: ns.map(Into::into),
            plural: plural.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        })
    }

    #[test]
    fn path_table() {
        let cases = [
            ("/version", Some(Target::Version)),
            ("/api", Some(Target::CoreVersions)),
            (
                "/api/v1",
                Some(Target::GroupVersion("".into(), "v1".into())),
            ),
            ("/apis", Some(Target::Groups)),
            ("/apis/apps", Some(Target::Group("apps".into()))),
            (
                "/apis/apps/v1",
                Some(Target::GroupVersion("apps".into(), "v1".into())),
            ),
            ("/api/v1/pods", Some(rp("", "v1", None, "pods", None, None))),
            (
                "/api/v1/namespaces",
                Some(rp("", "v1", None, "namespaces", None, None)),
            ),
            (
                "/api/v1/namespaces/x",
                Some(rp("", "v1", None, "namespaces", Some("x"), None)),
            ),
            (
                "/api/v1/namespaces/x/status",
                Some(rp("", "v1", None, "namespaces", Some("x"), Some("status"))),
            ),
            (
                "/api/v1/namespaces/x/pods",
                Some(rp("", "v1", Some("x"), "pods", None, None)),
            ),
            (
                "/api/v1/namespaces/x/pods/p/log",
                Some(rp("", "v1", Some("x"), "pods", Some("p"), Some("log"))),
            ),
            (
                "/apis/test.io/v1/namespaces/n/widgets/w/status",
                Some(rp(
                    "test.io",
                    "v1",
                    Some("n"),
                    "widgets",
                    Some("w"),
                    Some("status"),
                )),
            ),
            (
                "/apis/test.io/v1/clusterthings/c",
                Some(rp("test.io", "v1", None, "clusterthings", Some("c"), None)),
            ),
            ("/nope", None),
            ("/api/v1/namespaces/x/pods/p/log/extra", None),
        ];
        for (path, want) in cases {
            assert_eq!(parse_path(path), want, "{path}");
        }
    }
}
