{{/* The ConfigMap the operator publishes invoke-key verifiers in and the gateway watches. */}}
{{- define "pilotlight.invokeKeysName" -}}
{{- printf "%s-invoke-keys" (include "pilotlight.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
