{{/* Name of the chart, or nameOverride. */}}
{{- define "sesgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects. */}}
{{- define "sesgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sesgate.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of the gateway's objects. */}}
{{- define "sesgate.labels" -}}
{{ include "sesgate.commonLabels" . }}
{{ include "sesgate.selectorLabels" . }}
{{- end -}}

{{/* Labels of the bundled Redis's objects. */}}
{{- define "sesgate.redisLabels" -}}
{{ include "sesgate.commonLabels" . }}
{{ include "sesgate.redisSelectorLabels" . }}
{{- end -}}

{{- define "sesgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sesgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "sesgate.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sesgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{- define "sesgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sesgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sesgate.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "sesgate.fullname" .)) .Values.policy.existingConfigMap -}}
{{- end -}}

{{- define "sesgate.tlsSecret" -}}
{{- default (printf "%s-tls" (include "sesgate.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- define "sesgate.secret" -}}
{{- default (printf "%s-secrets" (include "sesgate.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "sesgate.redisName" -}}
{{- printf "%s-redis" (include "sesgate.fullname" .) -}}
{{- end -}}

{{/* The Redis URL the gateway uses; empty: the embedded store. */}}
{{- define "sesgate.redisURL" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s:6379/0" (include "sesgate.redisName" .) -}}
{{- else -}}
{{- .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/* The grace period: given (and checked against the drain bound) or derived from it. */}}
{{- define "sesgate.grace" -}}
{{- $drain := add .Values.gateway.shutdownDelaySeconds .Values.gateway.shutdownTimeoutSeconds -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $drain 15 -}}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed gateway.shutdownDelaySeconds + gateway.shutdownTimeoutSeconds (%v): Kubernetes would kill sessions still draining" .Values.terminationGracePeriodSeconds $drain) -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* Checks of value combinations that would render a broken release. */}}
{{- define "sesgate.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (include "sesgate.redisURL" .)) -}}
{{- fail "replicaCount > 1 needs Redis (redis.enabled or redis.url): the embedded store is single-process" -}}
{{- end -}}
{{- if and .Values.redis.enabled .Values.redis.url -}}
{{- fail "redis.url is for an external Redis: set redis.enabled=false with it" -}}
{{- end -}}
{{- if and (gt (int .Values.gateway.smtpsPort) 0) (not .Values.tls.enabled) -}}
{{- fail "gateway.smtpsPort needs tls.enabled" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.serviceMonitor.adminTokenSecret.name) -}}
{{- fail "metrics.serviceMonitor.adminTokenSecret.name: /metrics needs an admin token; name the Secret that holds one" -}}
{{- end -}}
{{- end -}}
