{{- /*
Names, as `helm create` makes them: nameOverride replaces the chart's name,
fullnameOverride the whole prefix; both cut to 63 characters (a DNS label,
the limit of a Service name and of a label value).
*/ -}}
{{- define "backup-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "backup-operator.fullname" -}}
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

{{- /*
The full name with a suffix, in 63 characters: the full name is cut, never
the suffix, so that "-metrics" and "-metrics-reader" (or "-webhook" and
"-webhook-tls") stay distinct however long the release name is.
Call as: include "backup-operator.suffixed" (list . "webhook")
*/ -}}
{{- define "backup-operator.suffixed" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $prefix := include "backup-operator.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $prefix $suffix -}}
{{- end -}}

{{- define "backup-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "backup-operator.labels" -}}
helm.sh/chart: {{ include "backup-operator.chart" . }}
{{ include "backup-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "backup-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backup-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "backup-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "backup-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "backup-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "backup-operator.webhookService" -}}
{{- include "backup-operator.suffixed" (list . "webhook") -}}
{{- end -}}

{{- /* The DNS names the API server (and, for metrics, Prometheus) checks the webhook certificate against. */ -}}
{{- define "backup-operator.webhookDnsNames" -}}
{{- $svc := include "backup-operator.webhookService" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{- /* The Secret holding the webhook's tls.crt, tls.key and ca.crt, in every mode. */ -}}
{{- define "backup-operator.webhookSecret" -}}
{{- if eq .Values.webhook.certificate.mode "secret" -}}
{{- required "webhook.certificate.existingSecret is required when webhook.certificate.mode is secret" .Values.webhook.certificate.existingSecret -}}
{{- else -}}
{{- include "backup-operator.suffixed" (list . "webhook-tls") -}}
{{- end -}}
{{- end -}}

{{- /* The cert-manager Certificate of the webhook (certManager mode). */ -}}
{{- define "backup-operator.webhookCertificate" -}}
{{- include "backup-operator.suffixed" (list . "webhook") -}}
{{- end -}}

{{- /*
The Secret whose tls.crt/tls.key /metrics serves when metrics.secure: the one
named by metrics.certSecret, else the webhook's, so that the ServiceMonitor
can verify it against a CA the chart knows.
*/ -}}
{{- define "backup-operator.metricsCertSecret" -}}
{{- default (include "backup-operator.webhookSecret" .) .Values.metrics.certSecret -}}
{{- end -}}

{{/*
The watched namespaces as a JSON list: watchNamespaces, plus the older
single watchNamespace when set; empty means every namespace.
*/}}
{{- define "backup-operator.watchNamespaces" -}}
{{- $list := list -}}
{{- range .Values.watchNamespaces }}{{ $list = append $list . }}{{ end -}}
{{- with .Values.watchNamespace }}{{ $list = append $list . }}{{ end -}}
{{- $list | uniq | toJson -}}
{{- end }}
