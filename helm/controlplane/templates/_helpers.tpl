{{/* Names and labels. */}}
{{- define "controlplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "controlplane.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "controlplane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "controlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels for one component: include "controlplane.selectorLabels" (list . "web") */}}
{{- define "controlplane.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "controlplane.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "controlplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "controlplane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "controlplane.image" -}}
{{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "controlplane.mlflowImage" -}}
{{ printf "%s:%s" (default .Values.image.repository .Values.mlflow.image.repository) (default (default .Chart.AppVersion .Values.image.tag) .Values.mlflow.image.tag) }}
{{- end }}

{{- define "controlplane.secretName" -}}
{{- default (printf "%s-secrets" (include "controlplane.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "controlplane.mlflowName" -}}
{{- printf "%s-mlflow" (include "controlplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "controlplane.mlflowSecretName" -}}
{{- default (include "controlplane.mlflowName" .) .Values.mlflow.existingSecret }}
{{- end }}

{{- define "controlplane.mlflowUrl" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s:%d" (include "controlplane.mlflowName" .) (int .Values.mlflow.port) }}
{{- else }}
{{- required "mlflow.externalUrl is required when mlflow.enabled is false" .Values.mlflow.externalUrl }}
{{- end }}
{{- end }}

{{/* The secret keys every control-plane pod reads as <KEY>_FILE. */}}
{{- define "controlplane.secretKeys" -}}
{{- $keys := list "DJANGO_SECRET_KEY" "DATABASE_URL" "MLFLOW_WEBHOOK_SECRET" }}
{{- if .Values.sharedCache.enabled }}{{ $keys = append $keys "CACHE_URL" }}{{ end }}
{{- if not .Values.redis.bundled }}{{ $keys = append $keys "CELERY_BROKER_URL" }}{{ end }}
{{- join "," $keys }}
{{- end }}

{{- define "controlplane.allowedHosts" -}}
{{- $hosts := list (include "controlplane.fullname" .) (printf "%s.%s.svc" (include "controlplane.fullname" .) .Release.Namespace) "localhost" "127.0.0.1" }}
{{- range .Values.ingress.hosts }}{{ $hosts = append $hosts .host }}{{ end }}
{{- join "," (concat $hosts .Values.config.allowedHosts | uniq) }}
{{- end }}

{{/* The paths the Ingress routes (Prefix): the public API only, see values.yaml ingress. */}}
{{- define "controlplane.publicPaths" -}}
{{- $paths := list "/predict" "/feedback" "/api" }}
{{- if .Values.ingress.admin }}{{ $paths = concat $paths (list "/admin" "/static") }}{{ end }}
{{- if .Values.ingress.webhook }}{{ $paths = append $paths "/hooks" }}{{ end }}
{{- join "," $paths }}
{{- end }}

{{/* config.https.enabled, with null meaning: on when the Ingress is enabled with TLS. */}}
{{- define "controlplane.https" -}}
{{- $https := .Values.config.https.enabled }}
{{- if kindIs "invalid" $https }}
{{- $https = and .Values.ingress.enabled (not (empty .Values.ingress.tls)) }}
{{- end }}
{{- ternary "true" "false" $https }}
{{- end }}

{{- define "controlplane.redisName" -}}
{{- printf "%s-redis" (include "controlplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Environment shared by the web pods, the hook Jobs, the Celery workers and beat. */}}
{{- define "controlplane.env" -}}
# Kubelet probes and Prometheus send Host: <pod IP>:<port>; Django must accept it.
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: DJANGO_DEBUG
  value: {{ .Values.config.debug | quote }}
- name: DJANGO_ALLOWED_HOSTS
  value: {{ printf "%s,$(POD_IP)" (include "controlplane.allowedHosts" .) | quote }}
{{- with .Values.config.csrfTrustedOrigins }}
- name: DJANGO_CSRF_TRUSTED_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
- name: DEFAULT_ENDPOINT
  value: {{ .Values.config.defaultEndpoint | quote }}
{{- if eq (include "controlplane.https" .) "true" }}
{{- with .Values.config.https }}
# TLS ends at the Ingress: what `manage.py check --deploy` asks for (docs/kubernetes.md).
- name: DJANGO_SECURE_PROXY_SSL_HEADER
  value: "true"
- name: DJANGO_SECURE_SSL_REDIRECT
  value: "true"
- name: DJANGO_SECURE_COOKIES
  value: "true"
- name: DJANGO_SECURE_HSTS_SECONDS
  value: {{ .hstsSeconds | int | quote }}
- name: DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS
  value: {{ .hstsIncludeSubdomains | quote }}
- name: DJANGO_SECURE_HSTS_PRELOAD
  value: {{ .hstsPreload | quote }}
{{- end }}
{{- end }}
- name: MLFLOW_TRACKING_URI
  value: {{ include "controlplane.mlflowUrl" . | quote }}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: CONTROLPLANE_VAR_DIR
  value: /tmp/controlplane
- name: DJANGO_STATIC_ROOT
  value: /app/staticfiles
- name: HOME
  value: /tmp
# Batch scoring jobs: web pods store uploads, workers score them; both reach the same bucket.
- name: BATCH_STORAGE
  value: "s3"
- name: BATCH_S3_BUCKET
  value: {{ .Values.batchJobs.s3.bucket | quote }}
- name: BATCH_S3_PREFIX
  value: {{ .Values.batchJobs.s3.prefix | quote }}
{{- with .Values.batchJobs.s3.endpointUrl }}
- name: BATCH_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.batchJobs.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
- name: BATCH_MAX_UPLOAD_BYTES
  value: {{ .Values.batchJobs.maxUploadBytes | int64 | quote }}
- name: BATCH_CHUNK_ROWS
  value: {{ .Values.batchJobs.chunkRows | int | quote }}
- name: BATCH_JOB_RETENTION_DAYS
  value: {{ .Values.batchJobs.retentionDays | int | quote }}
# Background work (Celery): every pod may enqueue; workers and beat also need the schedule.
{{- if .Values.redis.bundled }}
- name: CELERY_BROKER_URL
  value: {{ printf "redis://%s:%d/0" (include "controlplane.redisName" .) (int .Values.redis.port) | quote }}
{{- end }}
- name: CELERY_QUEUE
  value: {{ .Values.celery.queue | quote }}
- name: CELERY_TASK_TIME_LIMIT_SECONDS
  value: {{ .Values.celery.taskTimeLimitSeconds | quote }}
- name: CELERY_VISIBILITY_TIMEOUT_SECONDS
  value: {{ .Values.celery.visibilityTimeoutSeconds | quote }}
- name: SCHEDULE_SYNC_REGISTRY_SECONDS
  value: {{ .Values.celery.schedule.syncRegistrySeconds | quote }}
- name: SCHEDULE_COMPUTE_DRIFT_SECONDS
  value: {{ .Values.celery.schedule.computeDriftSeconds | quote }}
- name: SCHEDULE_PUBLISH_PRODUCTION_FACTS_SECONDS
  value: {{ .Values.celery.schedule.publishProductionFactsSeconds | quote }}
- name: ROLLOUT_TICK_SECONDS
  value: {{ .Values.celery.schedule.rolloutTickSeconds | quote }}
{{- with .Values.celery.rolloutPrometheusUrl }}
- name: ROLLOUT_PROMETHEUS_URL
  value: {{ . | quote }}
{{- end }}
{{- range (splitList "," (include "controlplane.secretKeys" .)) }}
- name: {{ . }}_FILE
  value: /run/secrets/controlplane/{{ . }}
{{- end }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every control-plane pod mounts: the secret files and a writable /tmp. */}}
{{- define "controlplane.volumes" -}}
- name: secrets
  secret:
    secretName: {{ include "controlplane.secretName" . }}
    defaultMode: 0440
    items:
    {{- range (splitList "," (include "controlplane.secretKeys" .)) }}
      - key: {{ . }}
        path: {{ . }}
    {{- end }}
- name: tmp
  emptyDir: {}
{{- end }}

{{- define "controlplane.volumeMounts" -}}
- name: secrets
  mountPath: /run/secrets/controlplane
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* A pod spec's common head: service account, security, pull secrets. */}}
{{- define "controlplane.podCommon" -}}
serviceAccountName: {{ include "controlplane.serviceAccountName" . }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
