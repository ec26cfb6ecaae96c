{{/* The CSI driver name is compiled into the binary; it is not a value. */}}
{{- define "csi-goferfs.driverName" -}}goferfs.csi.dev{{- end }}

{{- define "csi-goferfs.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* fullname prefixes cluster-scoped objects so two releases do not collide. */}}
{{- define "csi-goferfs.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "csi-goferfs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "csi-goferfs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "csi-goferfs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "csi-goferfs.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "csi-goferfs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "csi-goferfs.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "csi-goferfs.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* sidecarImage renders a sidecar's image; an empty repository means the driver's own image. */}}
{{- define "csi-goferfs.sidecarImage" -}}
{{- $root := index . 0 }}{{- $img := index . 1 }}
{{- if $img.repository }}
{{- printf "%s:%s" $img.repository $img.tag }}
{{- else }}
{{- include "csi-goferfs.image" $root }}
{{- end }}
{{- end }}

{{/* socketDir is where the kubelet finds the driver's socket on the host. */}}
{{- define "csi-goferfs.socketDir" -}}
{{- printf "%s/plugins/%s" (trimSuffix "/" .Values.kubeletDir) (include "csi-goferfs.driverName" .) }}
{{- end }}

{{/* goferName is the gofer's Deployment and Service. */}}
{{- define "csi-goferfs.goferName" -}}
{{- printf "%s-gofer" (include "csi-goferfs.fullname" .) }}
{{- end }}

{{/* ninepServer is the 9P StorageClass's server: backend9p.server, or the gofer's Service. */}}
{{- define "csi-goferfs.ninepServer" -}}
{{- if .Values.backend9p.server }}
{{- .Values.backend9p.server }}
{{- else if .Values.gofer.enabled }}
{{- printf "%s.%s.svc:%d" (include "csi-goferfs.goferName" .) .Release.Namespace (int .Values.gofer.port) }}
{{- else }}
{{- fail "backend9p.server is required unless gofer.enabled: name the 9P server (host:port or /unix/socket)" }}
{{- end }}
{{- end }}

{{/* immediateBinding: the node provisioners must take claims of a class with Immediate binding. */}}
{{- define "csi-goferfs.immediateBinding" -}}
{{- and .Values.backend9p.enabled (eq .Values.backend9p.volumeBindingMode "Immediate") }}
{{- end }}
