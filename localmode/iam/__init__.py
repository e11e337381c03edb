"""Local mode under the template's IAM: every AWS call is authorized against
the policies of the principal that makes it before it reaches moto
(`enforce`), with AWS's evaluation logic (`evaluate`), the template's
policies as the local stack resolves them (`policies`), and each API
operation's actions and resources from the Service Authorization Reference
(`operations`). `mutation` replays a run's requests with each statement
removed, to show which statements some run needs."""
