//! Every text the window shows, in English and in Spanish: one table, one
//! row per text, no i18n crate. A text with blanks to fill names them in
//! braces (`{nick}`), and [`Texts::fill`] puts the values in, so a
//! translation may move them; a test checks that both languages use the
//! same names. What the server says in its own words (an ERROR's reason)
//! is shown as it comes; the headless mode prints English only.

use chat_client::Language;

/// Declares the keys and the table in one go, so a key cannot lack a row.
macro_rules! strings {
    ($($key:ident: $english:literal, $spanish:literal;)*) => {
        /// The name of each text.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum S { $($key,)* }

        /// Each key with its English and Spanish text.
        const TABLE: &[(S, &str, &str)] = &[$((S::$key, $english, $spanish),)*];
    };
}

strings! {
    DialogTitle: "hmac-chat: connect", "hmac-chat: conectar";
    Nickname: "Nickname", "Apodo";
    Server: "Server", "Servidor";
    Connect: "Connect", "Conectar";
    KeyFile: "Key file", "Fichero de clave";
    KeyMissing: "no key file at {path}: copy the server's chat.key there (the very file the server uses, by a safe channel), or type where it is above",
        "no hay fichero de clave en {path}: copia ahí el chat.key del servidor (el mismo fichero que usa el servidor, por un medio seguro), o escribe arriba dónde está";
    KeyTooOpen: "{path}: other users of this computer can read the key (mode {mode}); fix it with: {chmod}",
        "{path}: otros usuarios de este ordenador pueden leer la clave (modo {mode}); hazlo privado con: {chmod}";
    KeyPatterned: "{path}: not a random key, so not the server's (it refuses such keys too); copy the server's chat.key",
        "{path}: no es una clave aleatoria, así que no es la del servidor (que también rechaza esas claves); copia el chat.key del servidor";
    KeyMalformed: "{path}: {why}, not the 64 hex characters of a key; copy the server's chat.key again",
        "{path}: {why}, no los 64 caracteres hexadecimales de una clave; vuelve a copiar el chat.key del servidor";
    KeyUnreadable: "{path}: cannot be read ({detail})", "{path}: no se puede leer ({detail})";
    BadServer: "server: {text} is not host:port (e.g. 127.0.0.1:5555)",
        "servidor: {text} no es servidor:puerto (p. ej. 127.0.0.1:5555)";
    BadNick: "nickname: use 1 to 32 ASCII letters, digits, _ - or .",
        "apodo: usa de 1 a 32 letras ASCII, cifras, _ - o .";
    CannotStart: "cannot start: {reason}", "no se puede empezar: {reason}";
    AlreadyRunning: "another chat client is running as {nick} in this chat; close it first",
        "ya hay otro cliente del chat abierto como {nick}; ciérralo primero";
    Exported: "{nick}'s identity was moved to another computer; import it here with --import-identity, or choose another nickname",
        "la identidad de {nick} se llevó a otro ordenador; impórtala aquí con --import-identity, o elige otro apodo";
    CannotLogIn: "cannot log in as {nick}: {reason}", "no se puede entrar como {nick}: {reason}";
    NicknameOwned: "this nickname belongs to another user; choose another one",
        "este apodo pertenece a otra persona; elige otro";
    TokenUnknown: "the server does not know this nickname's owner token (its data was reset, or it is not the real server)",
        "el servidor no conoce el testigo de este apodo (se borraron sus datos, o no es el servidor de verdad)";
    Online: "Online", "Conectados";
    OnlineMore: "Online, and {count} more", "Conectados, y {count} más";
    Send: "Send", "Enviar";
    Placeholder: "Write a message · /msg NICK text for a private one · /help",
        "Escribe un mensaje · /msg APODO texto para uno privado · /help";
    NewBelow: "new messages below ↓", "mensajes nuevos abajo ↓";
    SendAgain: "Send again", "Reenviar";
    Discard: "Discard", "Descartar";
    FailedBar: "Not sent: “{text}” ({reason})", "No enviado: «{text}» ({reason})";
    FailedBarTo: "Not sent to {nick}: “{text}” ({reason})", "No enviado a {nick}: «{text}» ({reason})";
    StateConnecting: "connecting", "conectando";
    StateConnected: "connected", "conectado";
    StateOffline: "offline", "sin conexión";
    StateClosing: "closing", "cerrando";
    StatusConnecting: "connecting to {server} as {nick}…", "conectando con {server} como {nick}…";
    StatusConnected: "connected to {server} as {nick}", "conectado a {server} como {nick}";
    StatusOffline: "offline · next try in {secs} s", "sin conexión · nuevo intento en {secs} s";
    StatusTrying: "offline · trying again…", "sin conexión · intentándolo de nuevo…";
    StatusReason: "{status} · {reason}", "{status} · {reason}";
    StatusClosing: "closing…", "cerrando…";
    StatusClosingSending: "closing: sending {count} first…", "cerrando: antes se envían {count}…";
    StatusWaiting: "{status} · {count} waiting to be sent", "{status} · {count} por enviar";
    OneMessage: "1 message", "1 mensaje";
    Messages: "{n} messages", "{n} mensajes";
    Unreachable: "server not reachable at {server}", "no se llega al servidor en {server}";
    CauseRefused: "{what}: nothing answers on that port (is the server running?)",
        "{what}: nadie responde en ese puerto (¿está en marcha el servidor?)";
    CauseTimedOut: "{what}: no answer (check the address and the firewall)",
        "{what}: no hay respuesta (revisa la dirección y el cortafuegos)";
    CauseNoRoute: "{what}: no route to it (check the address and the network)",
        "{what}: no hay ruta hasta él (revisa la dirección y la red)";
    CauseUnknownHost: "{what}: unknown host name", "{what}: nombre de equipo desconocido";
    CauseOther: "{what} ({detail})", "{what} ({detail})";
    KeyRefused: "the server refused our key (is your key file the server's?)",
        "el servidor rechazó nuestra clave (¿es tu fichero de clave el del servidor?)";
    FakeServer: "fake server: it could not prove it holds the key",
        "servidor falso: no pudo demostrar que tiene la clave";
    Refused: "the server refused us: {reason}", "el servidor nos rechazó: {reason}";
    HandshakeFailed: "the handshake failed: {detail}", "falló el saludo inicial: {detail}";
    Closed: "the server closed the connection", "el servidor cerró la conexión";
    Silent: "nothing heard from the server for {secs} s", "no se sabe nada del servidor desde hace {secs} s";
    Lost: "connection lost ({detail})", "conexión perdida ({detail})";
    BadFrame: "a frame from the server failed its check ({detail})",
        "una trama del servidor no superó la comprobación ({detail})";
    Joined: "{nick} joined", "{nick} ha entrado";
    Left: "{nick} left", "{nick} ha salido";
    ConnectedAgain: "connected to {server}", "conectado a {server}";
    ConnectionLost: "connection lost: {reason}", "se perdió la conexión: {reason}";
    Away: "— while you were away —", "— mientras no estabas —";
    Sending: "sending…", "enviando…";
    Held: "not sent yet: {reason}; will try again in {secs} s",
        "aún sin enviar: {reason}; se reintentará en {secs} s";
    Failed: "not sent: {reason}", "no enviado: {reason}";
    Dropped: "{count} messages to you were dropped unread: your mailbox on the server was full (it keeps {limit})",
        "se descartaron {count} mensajes para ti sin leer: tu buzón en el servidor estaba lleno (guarda {limit})";
    Help: "Commands:\n  TEXT: a message to everyone\n  /msg NICK TEXT: a private message to NICK (or double-click a name)\n  //TEXT: a message to everyone that starts with /\n  Up arrow: the last line again\n  F12: the protocol pane, every frame as it goes\n  /quiet: hide or show join and leave lines\n  /help: this list\n  /quit: send what is waiting, then close",
        "Órdenes:\n  TEXTO: un mensaje para todos\n  /msg APODO TEXTO: un mensaje privado para APODO (o doble clic en un nombre)\n  //TEXTO: un mensaje para todos que empieza por /\n  Flecha arriba: la última línea otra vez\n  F12: el panel del protocolo, cada trama según pasa\n  /quiet: oculta o muestra las entradas y salidas\n  /help: esta lista\n  /quit: envía lo pendiente y cierra";
    PaneButton: "Frames (F12)", "Tramas (F12)";
    PaneTitle: "hmac-chat: protocol", "hmac-chat: protocolo";
    PaneHint: "Frames sent (→) and received (←) on this connection, from now on; select one to see its bytes",
        "Tramas enviadas (→) y recibidas (←) en esta conexión, desde ahora; elige una para ver sus bytes";
    PaneConnection: "— connection {n}: a new session, its own keys, sequence numbers from 0 —",
        "— conexión {n}: una sesión nueva, con sus propias claves y números de secuencia desde 0 —";
    Length: "length", "longitud";
    Seq: "seq", "secuencia";
    Kind: "kind", "tipo";
    Payload: "payload", "carga";
    Tag: "tag", "etiqueta";
    QuietOn: "join and leave lines are hidden; /quiet shows them again",
        "las entradas y salidas están ocultas; /quiet las vuelve a mostrar";
    QuietOff: "join and leave lines are shown", "se muestran las entradas y salidas";
    MsgUsage: "usage: /msg NICK TEXT", "uso: /msg APODO TEXTO";
    UnknownCommand: "unknown command {name}; /help lists the commands (// starts a message with /)",
        "orden desconocida {name}; /help muestra las órdenes (// empieza un mensaje con /)";
    TooLong: "message not sent: it is {len} bytes, more than the limit of {max}",
        "mensaje no enviado: tiene {len} bytes, más que el límite de {max}";
    ForbiddenChar: "message not sent: it contains a character that cannot be sent ({char})",
        "mensaje no enviado: contiene un carácter que no se puede enviar ({char})";
    CannotSend: "message not sent: {why}", "mensaje no enviado: {why}";
    BadRecipient: "message not sent: {nick} is not a valid nickname",
        "mensaje no enviado: {nick} no es un apodo válido";
}

/// The texts of one language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Texts {
    pub language: Language,
}

impl Texts {
    /// The text of `key`, blanks unfilled.
    pub fn get(&self, key: S) -> &'static str {
        // Every key has exactly one row (the macro makes both from one list).
        let (_, english, spanish) = TABLE.iter().find(|(row, _, _)| *row == key).expect("every key has a row");
        match self.language {
            Language::English => english,
            Language::Spanish => spanish,
        }
    }

    /// The text of `key` with each `{name}` replaced by its value.
    pub fn fill(&self, key: S, values: &[(&str, &str)]) -> String {
        let mut text = self.get(key).to_owned();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// "1 message" or "N messages".
    pub fn messages(&self, count: usize) -> String {
        if count == 1 { self.get(S::OneMessage).into() } else { self.fill(S::Messages, &[("n", &count.to_string())]) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `{name}`s of a text, sorted.
    fn blanks(text: &str) -> Vec<&str> {
        let mut names: Vec<&str> =
            text.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name)).collect();
        names.sort();
        names
    }

    #[test]
    fn both_languages_have_every_text_with_the_same_blanks() {
        for (key, english, spanish) in TABLE {
            assert!(!english.is_empty() && !spanish.is_empty(), "{key:?}");
            assert_eq!(blanks(english), blanks(spanish), "{key:?}");
            assert_eq!(TABLE.iter().filter(|(other, _, _)| other == key).count(), 1, "{key:?}");
        }
        let translated = TABLE.iter().filter(|(_, english, spanish)| english != spanish).count();
        assert!(translated + 2 >= TABLE.len(), "only a couple of texts may read the same in both");
    }

    #[test]
    fn blanks_are_filled_by_name() {
        let spanish = Texts { language: Language::Spanish };
        assert_eq!(spanish.fill(S::Joined, &[("nick", "ana")]), "ana ha entrado");
        let english = Texts { language: Language::English };
        let status = english.fill(S::StatusOffline, &[("secs", "3")]);
        assert_eq!(status, "offline · next try in 3 s");
        assert_eq!((english.messages(1), spanish.messages(2)), ("1 message".into(), "2 mensajes".into()));
    }
}
