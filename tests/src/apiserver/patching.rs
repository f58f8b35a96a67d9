//! PATCH: JSON merge, JSON patch and strategic merge patch are applied to the current object and
//! then written like an update (so a patch carrying `metadata.resourceVersion` is a conditional
//! update); server-side apply merges through [`super::apply`] and creates missing objects.

use serde_json::{Value, json};

use super::apply::{self, ApplyRequest};
use super::builtin;
use super::error::{ApiError, Cause};
use super::meta;
use super::ops::{
    FieldValidation, Managed, ObjectAddr, PatchType, WriteOptions, WriteResult, create_with,
    decode, decode_with, key_for, schema_json, to_served, write_update,
};
use super::patch;
use super::state::ApiServer;
use super::store::State;

/// PATCH: merge, JSON, strategic merge patch or server-side apply.
pub fn patch(
    server: &ApiServer,
    st: &mut State,
    at: &ObjectAddr<'_>,
    kind: PatchType,
    body: &Value,
    opts: &WriteOptions,
) -> Result<WriteResult, ApiError> {
    let ObjectAddr { rt, ns, name, .. } = *at;
    let key = key_for(rt, ns, name);
    let current = st.get(&key).map(|o| to_served(rt, o));
    if kind == PatchType::Apply {
        return apply_patch(server, st, at, current, body, opts);
    }
    let mut obj = current.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
    let failed = |e: patch::PatchError| ApiError::new(422, "Invalid", e.0);
    match kind {
        PatchType::Merge => patch::merge_patch(&mut obj, body),
        PatchType::Json => patch::json_patch(&mut obj, body).map_err(failed)?,
        PatchType::Strategic => {
            if !rt.is_core_builtin() {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                ));
            }
            patch::strategic_merge(&mut obj, body).map_err(failed)?
        }
        PatchType::Apply => unreachable!("handled above"),
    }
    let (decoded, warnings) = decode(rt, obj, opts)?;
    let mut r = write_update(
        server,
        st,
        at,
        decoded,
        opts,
        Managed::Update(&opts.manager),
    )?;
    r.warnings = warnings;
    Ok(r)
}

fn apply_patch(
    server: &ApiServer,
    st: &mut State,
    at: &ObjectAddr<'_>,
    current: Option<Value>,
    body: &Value,
    opts: &WriteOptions,
) -> Result<WriteResult, ApiError> {
    let ObjectAddr {
        rt,
        ns,
        name,
        subresource,
    } = *at;
    if !opts.explicit_manager {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml requires fieldManager to be set",
        ));
    }
    if body.get("apiVersion").is_none() || body.get("kind").is_none() {
        return Err(ApiError::bad_request(
            "invalid object type: apiVersion and kind must be set for apply",
        ));
    }
    // The applied configuration itself is decoded (unknown fields pruned or rejected).
    let (mut applied, warnings) = match decode_with(rt, body.clone(), opts, false) {
        Ok(r) => r,
        // A partial built-in object may miss fields its struct requires; the merged result is
        // decoded again below, which reports real type errors.
        Err(e)
            if e.code == 400 && rt.schema.is_none() && !e.message.contains("strict decoding") =>
        {
            (body.clone(), Vec::new())
        }
        Err(e) => return Err(e),
    };
    if rt.group == "events.k8s.io" {
        applied = builtin::event_from_core(&applied);
    }
    let now = meta::now();
    let api_version = rt.api_version();
    let req = ApplyRequest {
        manager: &opts.manager,
        force: opts.force,
        subresource,
        api_version: &api_version,
        now: &now,
        schema: schema_json(rt),
    };
    let exists = current.is_some();
    let mut live = current.unwrap_or_else(
        || json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}}),
    );
    apply::apply(&mut live, &applied, &req).map_err(|conflicts| {
        let mut e = ApiError::conflict(
            &rt.group,
            &rt.plural,
            name,
            &format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                conflicts
                    .iter()
                    .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        );
        e.causes = conflicts
            .iter()
            .map(|c| {
                Cause::new(
                    "FieldManagerConflict",
                    &c.field,
                    format!("conflict with \"{}\"", c.manager),
                )
            })
            .collect();
        e
    })?;
    if !exists {
        if subresource == "status" {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        }
        let mut r = create_with(server, st, rt, ns, live, opts, Managed::Applied)?;
        r.warnings.extend(warnings);
        return Ok(r);
    }
    let (decoded, _) = decode(
        rt,
        live,
        &WriteOptions {
            field_validation: FieldValidation::Ignore,
            ..opts.clone()
        },
    )?;
    let mut r = write_update(server, st, at, decoded, opts, Managed::Applied)?;
    r.warnings = warnings;
    Ok(r)
}
