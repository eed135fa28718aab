{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "pilotlight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every resource name: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart>". Truncated so that
the longest suffix added ("-sandbox-user") still fits 63 characters.
*/}}
{{- define "pilotlight.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "pilotlight.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pilotlight.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels on every object. Deliberately NOT app.kubernetes.io/managed-by=pilotlight:
the operator and the gateway watch pods carrying that label as function pods.
*/}}
{{- define "pilotlight.commonLabels" -}}
helm.sh/chart: {{ include "pilotlight.chart" . }}
app.kubernetes.io/part-of: pilotlight
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of objects that belong to no single component. */}}
{{- define "pilotlight.labels" -}}
{{ include "pilotlight.commonLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Selector labels of one component; call with (dict "root" $ "component" "operator").
app.kubernetes.io/name is "pilotlight-<component>" whatever the release is
called: the NetworkPolicy the operator puts in front of each sandbox admits
pods labelled app.kubernetes.io/name=pilotlight-gateway.
*/}}
{{- define "pilotlight.selectorLabels" -}}
app.kubernetes.io/name: pilotlight-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Common plus selector labels of one component (same argument as selectorLabels). */}}
{{- define "pilotlight.componentLabels" -}}
{{ include "pilotlight.commonLabels" .root }}
{{ include "pilotlight.selectorLabels" . }}
{{- end -}}

{{/* Names of the components' objects. */}}
{{- define "pilotlight.operatorName" -}}
{{- printf "%s-operator" (include "pilotlight.fullname" .) -}}
{{- end -}}

{{- define "pilotlight.gatewayName" -}}
{{- printf "%s-gateway" (include "pilotlight.fullname" .) -}}
{{- end -}}

{{- define "pilotlight.webhookName" -}}
{{- printf "%s-webhook" (include "pilotlight.operatorName" .) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "pilotlight.configName" -}}
{{- printf "%s-config" (include "pilotlight.fullname" .) -}}
{{- end -}}

{{- define "pilotlight.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "pilotlight.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pilotlight.gatewayServiceAccount" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "pilotlight.gatewayName" .) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A full image reference; call with (dict "root" $ "image" .Values.operator.image).
[registry/]repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "pilotlight.image" -}}
{{- $registry := .root.Values.image.registry | trimSuffix "/" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* In-cluster URL of this release's gateway Service. */}}
{{- define "pilotlight.gatewayUrl" -}}
{{- $port := int .Values.gateway.service.port -}}
{{- if eq $port 80 -}}
{{- printf "http://%s.%s" (include "pilotlight.gatewayName" .) .Release.Namespace -}}
{{- else -}}
{{- printf "http://%s.%s:%d" (include "pilotlight.gatewayName" .) .Release.Namespace $port -}}
{{- end -}}
{{- end -}}

{{/*
The hardening every container of the chart gets: the images run as 65532
(USER in docker/*.Dockerfile), write nothing but their emptyDirs, and need no
capabilities.
*/}}
{{- define "pilotlight.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "pilotlight.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The metadata: line of a CRD, with the chart's labels and, under crds.keep, Helm's keep policy. */}}
{{- define "pilotlight.crdMetadata" -}}
metadata:
  labels:
    {{- include "pilotlight.labels" . | nindent 4 }}
  {{- if .Values.crds.keep }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
{{- end -}}
