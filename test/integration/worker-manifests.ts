/** Small manifest builders for the worker tests. */
export function configMap(name: string, data: Record<string, string>, namespace?: string): string {
  const ns = namespace ? `\n  namespace: ${namespace}` : '';
  const entries = Object.entries(data)
    .map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`)
    .join('\n');
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}${ns}\ndata:\n${entries}\n`;
}

export function deployment(name: string, image = 'nginx:1.27'): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  replicas: 1
  selector:
    matchLabels: { app: ${name} }
  template:
    metadata:
      labels: { app: ${name} }
    spec:
      containers:
        - name: app
          image: ${image}
`;
}
