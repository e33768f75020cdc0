// placeholder: `mesh up` is written by the lead (starts nats-server + meshd in the foreground)
import { Command } from "commander";

export function upCommand(): Command {
  return new Command("up").description("start a local mesh: a nats-server child with JetStream and one meshd");
}
