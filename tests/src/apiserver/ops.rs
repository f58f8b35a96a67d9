//! Create, update and patch with the apiserver's generic-registry semantics
//! (`k8s.io/apiserver/pkg/registry/generic/registry/store.go` and the API conventions):
//!
//! - create fills `uid`, `creationTimestamp`, `generation: 1`, honours `generateName`, answers 409
//!   AlreadyExists for a taken name, 404 for a missing namespace and 403 for a terminating one;
//! - update (PUT) is optimistic: a `metadata.resourceVersion` that is not the stored one is 409
//!   Conflict; an empty one is an unconditional update; system metadata cannot be changed;
//! - with a `status` subresource, writes to the main resource keep the stored status and writes
//!   to `/status` keep everything but status (CRD docs, "Status subresource");
//! - `metadata.generation` increases when anything but metadata/status changes;
//! - a no-op update does not change resourceVersion and sends no watch event;
//! - once `deletionTimestamp` is set, no finalizer may be added and removing the last one
//!   deletes the object ("Finalizers" doc).
//!
//! PATCH lives in [`super::patching`], `pods/binding` in [`super::binding`].

use serde_json::{Value, json};

use super::apply;
use super::builtin;
use super::controllers;
use super::crd;
use super::error::{ApiError, Cause};
use super::meta;
use super::resources::ResourceType;
use super::state::ApiServer;
use super::store::{ObjectKey, State};

/// `fieldValidation` query parameter ("Field validation", API concepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    /// `fieldManager`, or the manager derived from the User-Agent as the apiserver does.
    pub manager: String,
    pub field_validation: FieldValidation,
    pub force: bool,
    /// `fieldManager` was given explicitly (required for apply).
    pub explicit_manager: bool,
}

/// A write's outcome: the object as served plus `Warning` header texts.
#[derive(Debug)]
pub struct WriteResult {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// The PATCH content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

pub fn key_for(rt: &ResourceType, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(
        &rt.storage_group,
        &rt.storage_resource,
        if rt.namespaced { namespace } else { "" },
        name,
    )
}

/// The stored object in the shape of the requested version.
pub fn to_served(rt: &ResourceType, stored: &Value) -> Value {
    let mut obj = if rt.group == "events.k8s.io" {
        builtin::event_from_core(stored)
    } else {
        stored.clone()
    };
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    if let Some(schema) = &rt.schema {
        // Defaulting also applies on read ("Defaulting" in the CRD docs).
        schema.normalize(&mut obj);
    }
    obj
}

pub(super) fn meta_str(obj: &Value, field: &str) -> String {
    obj["metadata"][field]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Type checks, unknown-field handling and conversion to the storage shape.
pub(super) fn decode(
    rt: &ResourceType,
    body: Value,
    opts: &WriteOptions,
) -> Result<(Value, Vec<String>), ApiError> {
    decode_with(rt, body, opts, true)
}

pub(super) fn decode_with(
    rt: &ResourceType,
    body: Value,
    opts: &WriteOptions,
    defaults: bool,
) -> Result<(Value, Vec<String>), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request was not a {} object",
            rt.kind
        )));
    }
    let mut body = body;
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
        && av != rt.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    body["apiVersion"] = json!(rt.api_version());
    body["kind"] = json!(rt.kind);
    if !body.get("metadata").is_some_and(Value::is_object) {
        body["metadata"] = json!({});
    }
    let (mut obj, unknown) = match &rt.schema {
        Some(schema) => {
            let mut obj = body;
            let pruned = if defaults {
                schema.normalize(&mut obj)
            } else {
                schema.prune(&mut obj)
            };
            (obj, pruned)
        }
        None => builtin::decode(rt, &body)?,
    };
    let mut warnings = Vec::new();
    match opts.field_validation {
        FieldValidation::Strict if !unknown.is_empty() => {
            let list: Vec<String> = unknown
                .iter()
                .map(|u| format!("unknown field \"{u}\""))
                .collect();
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                list.join(", ")
            )));
        }
        FieldValidation::Warn => {
            warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")))
        }
        _ => {}
    }
    if rt.group == "events.k8s.io" {
        obj = builtin::event_to_core(&obj);
    }
    Ok((obj, warnings))
}

/// Validation shared by create and update; 422 Invalid on failure.
fn validate(
    server: &ApiServer,
    rt: &ResourceType,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let name = meta_str(obj, "name");
    let mut causes: Vec<Cause> = Vec::new();
    causes.extend(meta::validate_name(
        &name,
        rt.group.is_empty() && rt.plural == "namespaces",
    ));
    causes.extend(meta::validate_labels(obj));
    match &rt.schema {
        Some(schema) => {
            let structural = schema.validate(obj);
            if structural.is_empty() {
                causes.extend(schema.validate_cel(obj, old));
            }
            causes.extend(structural);
        }
        None => causes.extend(builtin::validate(rt, obj, old)),
    }
    if rt.group == "apiextensions.k8s.io" {
        causes.extend(crd::validate(obj));
        if causes.is_empty() {
            crd::check_collision(&crd::resource_types(obj), &server.inner.builtins)?;
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.kind, &rt.group, &name, causes))
    }
}

fn check_namespace(st: &State, rt: &ResourceType, ns: &str, name: &str) -> Result<(), ApiError> {
    if !rt.namespaced {
        return Ok(());
    }
    let Some(nsobj) = st.get(&ObjectKey::new("", "namespaces", "", ns)) else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    if nsobj.pointer("/metadata/deletionTimestamp").is_some() {
        let mut e = ApiError::forbidden(
            &rt.group,
            &rt.plural,
            name,
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        );
        e.causes.push(Cause::new(
            "NamespaceTerminating",
            "metadata.namespace",
            format!("namespace {ns} is being terminated"),
        ));
        return Err(e);
    }
    Ok(())
}

/// ServiceAccount admission: a pod must name an existing service account.
fn admit_pod(st: &State, ns: &str, pod: &Value) -> Result<(), ApiError> {
    let sa = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default");
    if st
        .get(&ObjectKey::new("", "serviceaccounts", ns, sa))
        .is_none()
    {
        return Err(ApiError::forbidden(
            "",
            "pods",
            &meta_str(pod, "name"),
            &format!(
                "error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
            ),
        ));
    }
    Ok(())
}

/// POST: creates an object.
pub fn create(
    server: &ApiServer,
    st: &mut State,
    rt: &ResourceType,
    ns: &str,
    body: Value,
    opts: &WriteOptions,
) -> Result<WriteResult, ApiError> {
    create_with(
        server,
        st,
        rt,
        ns,
        body,
        opts,
        Managed::Update(&opts.manager),
    )
}

pub(super) fn create_with(
    server: &ApiServer,
    st: &mut State,
    rt: &ResourceType,
    ns: &str,
    body: Value,
    opts: &WriteOptions,
    managed: Managed<'_>,
) -> Result<WriteResult, ApiError> {
    let (mut obj, warnings) = decode(rt, body, opts)?;
    let body_ns = meta_str(&obj, "namespace");
    if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if !meta_str(&obj, "resourceVersion").is_empty() {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let mut name = meta_str(&obj, "name");
    if name.is_empty() {
        let prefix = meta_str(&obj, "generateName");
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
        name = meta::generate_name(&prefix);
    }
    check_namespace(st, rt, ns, &name)?;
    let now = meta::now();
    {
        let m = obj["metadata"]
            .as_object_mut()
            .expect("decode ensures metadata");
        m.insert("name".into(), json!(name));
        if rt.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        if let Managed::Update(_) = managed {
            m.remove("managedFields");
        }
        for system in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(system);
        }
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(now));
        if rt.has_generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    if rt.status_subresource
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    builtin::default_on_create(rt, &mut obj);
    validate(server, rt, &obj, None)?;
    if rt.group.is_empty() && rt.plural == "pods" {
        admit_pod(st, ns, &obj)?;
    }
    let key = key_for(rt, ns, &name);
    if st.get(&key).is_some() {
        return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
    }
    if let Managed::Update(manager) = managed {
        apply::record_update(
            &json!({}),
            &mut obj,
            manager,
            "",
            &rt.api_version(),
            &now,
            schema_json(rt),
        );
    }
    if opts.dry_run {
        return Ok(WriteResult {
            object: to_served(rt, &obj),
            warnings,
            created: true,
        });
    }
    let stored = st.put(key, obj);
    controllers::run(server, st);
    Ok(WriteResult {
        object: to_served(rt, &stored),
        warnings,
        created: true,
    })
}

pub(super) fn schema_json(rt: &ResourceType) -> Option<&Value> {
    rt.schema.as_ref().map(|s| &s.0)
}

/// The object a write addresses.
#[derive(Debug, Clone, Copy)]
pub struct ObjectAddr<'a> {
    pub rt: &'a ResourceType,
    pub ns: &'a str,
    pub name: &'a str,
    /// `""` or `"status"`.
    pub subresource: &'a str,
}

/// How managed fields are maintained for an update.
#[derive(Clone, Copy)]
pub(super) enum Managed<'a> {
    /// Record changed fields under this manager (`operation: Update`).
    Update(&'a str),
    /// Already computed by server-side apply.
    Applied,
}

/// PUT: replaces an object (or its status).
pub fn update(
    server: &ApiServer,
    st: &mut State,
    at: &ObjectAddr<'_>,
    body: Value,
    opts: &WriteOptions,
) -> Result<WriteResult, ApiError> {
    let rt = at.rt;
    let (obj, warnings) = decode(rt, body, opts)?;
    let mut r = write_update(server, st, at, obj, opts, Managed::Update(&opts.manager))?;
    r.warnings = warnings;
    Ok(r)
}

pub(super) fn write_update(
    server: &ApiServer,
    st: &mut State,
    at: &ObjectAddr<'_>,
    obj: Value,
    opts: &WriteOptions,
    managed: Managed<'_>,
) -> Result<WriteResult, ApiError> {
    let ObjectAddr {
        rt,
        ns,
        name,
        subresource,
    } = *at;
    let key = key_for(rt, ns, name);
    let old = st
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
    let body_name = meta_str(&obj, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = meta_str(&obj, "namespace");
    if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let rv = meta_str(&obj, "resourceVersion");
    if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(&rt.group, &rt.plural, name));
    }
    let uid = meta_str(&obj, "uid");
    if !uid.is_empty() && uid != meta_str(&old, "uid") {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&old, "uid")
            ),
        ));
    }
    let mut new = if subresource == "status" {
        // statusStrategy.PrepareForUpdate: everything but status (and managedFields) from the old object.
        let mut n = old.clone();
        match obj.get("status") {
            Some(s) => n["status"] = s.clone(),
            None => {
                n.as_object_mut().map(|o| o.remove("status"));
            }
        }
        if let Some(mf) = obj.pointer("/metadata/managedFields") {
            n["metadata"]["managedFields"] = mf.clone();
        }
        n
    } else {
        let mut n = obj;
        for system in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "name",
            "namespace",
        ] {
            match old["metadata"].get(system) {
                Some(v) => n["metadata"][system] = v.clone(),
                None => {
                    n["metadata"].as_object_mut().map(|m| m.remove(system));
                }
            }
        }
        if rt.status_subresource {
            match old.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    n.as_object_mut().map(|o| o.remove("status"));
                }
            }
        }
        n
    };
    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    builtin::default_on_update(rt, &mut new);
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let old_f = old["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let added = new["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| !old_f.contains(f));
        if added {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                name,
                vec![Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                )],
            ));
        }
    }
    if rt.has_generation && spec_changed(rt, &old, &new) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    validate(server, rt, &new, Some(&old))?;
    let without_mf = |v: &Value| {
        let mut v = v.clone();
        v["metadata"]
            .as_object_mut()
            .map(|m| m.remove("managedFields"));
        v
    };
    if without_mf(&new) == without_mf(&old) {
        // No-op: no new resourceVersion, no event (GuaranteedUpdate skips unchanged objects).
        return Ok(WriteResult {
            object: to_served(rt, &old),
            warnings: Vec::new(),
            created: false,
        });
    }
    if let Managed::Update(manager) = managed {
        new["metadata"]["managedFields"] = old["metadata"]
            .get("managedFields")
            .cloned()
            .unwrap_or(Value::Null);
        let now = meta::now();
        apply::record_update(
            &old,
            &mut new,
            manager,
            subresource,
            &rt.api_version(),
            &now,
            schema_json(rt),
        );
    }
    if opts.dry_run {
        return Ok(WriteResult {
            object: to_served(rt, &new),
            warnings: Vec::new(),
            created: false,
        });
    }
    let finalizers_empty = new["metadata"]["finalizers"]
        .as_array()
        .is_none_or(|f| f.is_empty());
    let stored = if new.pointer("/metadata/deletionTimestamp").is_some()
        && finalizers_empty
        && !graceful_pod_pending(server, rt, &new)
    {
        st.put(key.clone(), new);
        st.remove(&key).expect("just written")
    } else {
        st.put(key, new)
    };
    controllers::run(server, st);
    Ok(WriteResult {
        object: to_served(rt, &stored),
        warnings: Vec::new(),
        created: false,
    })
}

/// A pod whose graceful deletion waits for the kubelet emulator.
pub fn graceful_pod_pending(server: &ApiServer, rt: &ResourceType, obj: &Value) -> bool {
    rt.storage_group.is_empty()
        && rt.storage_resource == "pods"
        && server.kubelet_attached()
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0
}

/// Whether anything outside metadata (and status, for types with a status subresource) changed.
fn spec_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            o.remove("apiVersion");
            o.remove("kind");
            if rt.status_subresource {
                o.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}
